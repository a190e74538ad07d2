//! One worker per key at a time within this instance, and a cap on how many keys are worked on
//! at once: for heavy work that many requests may ask for at the same moment, such as a mask
//! version's `.nii.gz` written on its first request. Waiters on a key wait without holding a
//! permit, then find the work done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, Semaphore, SemaphorePermit};

#[derive(Debug)]
pub struct SingleFlight {
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    permits: Semaphore,
    done: AtomicU64,
}

/// The right to work on one key; others asking for the same key wait until it is dropped.
pub struct Turn<'a> {
    flight: &'a SingleFlight,
    key: String,
    _permit: SemaphorePermit<'a>,
    /// Taken in `drop`, before the key's waiters are counted.
    held: Option<OwnedMutexGuard<()>>,
}

impl SingleFlight {
    pub fn new(at_once: usize) -> SingleFlight {
        SingleFlight { keys: Mutex::default(), permits: Semaphore::new(at_once.max(1)), done: AtomicU64::new(0) }
    }

    /// Waits for the turn on `key`, then for a permit.
    pub(crate) async fn turn(&self, key: &str) -> Turn<'_> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            keys.entry(key.to_string()).or_default().clone()
        };
        let held = lock.lock_owned().await;
        let permit = self.permits.acquire().await.expect("the permits are never closed");
        Turn { flight: self, key: key.to_string(), _permit: permit, held: Some(held) }
    }

    /// How many turns did the work (rather than finding it done).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl Turn<'_> {
    /// Notes that this turn did the work.
    pub(crate) fn did_work(&self) {
        self.flight.done.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut keys = self.flight.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.held.take();
        // Nobody waits when only the map holds the key's lock: forget the key.
        if keys.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_per_key_at_a_time_and_keys_are_forgotten() {
        let flight = Arc::new(SingleFlight::new(2));
        let first = flight.turn("a").await;
        let waiter = {
            let flight = flight.clone();
            tokio::spawn(async move {
                let _second = flight.turn("a").await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a second turn on the same key began while the first was held");
        let _other = flight.turn("b").await;
        drop(first);
        waiter.await.unwrap();
        drop(_other);
        assert!(flight.keys.lock().unwrap().is_empty());
    }
}
