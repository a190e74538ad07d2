//! A gate for heavy computations: at most a few run at once in this instance, and requests
//! for the same result wait for the one computing it (single flight) instead of computing it
//! again beside it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Gate {
    permits: Arc<Semaphore>,
    in_flight: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Held while computing: the key's turn and one of the permits.
pub struct Pass {
    _turn: OwnedMutexGuard<()>,
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    pub fn new(concurrency: usize) -> Gate {
        Gate { permits: Arc::new(Semaphore::new(concurrency.max(1))), in_flight: Mutex::new(HashMap::new()) }
    }

    /// Waits for `key`'s turn, then for a permit. Whoever gets the turn after another request
    /// with the same key should look for that one's result before computing.
    pub async fn enter(&self, key: &str) -> Pass {
        let turn = {
            let mut in_flight = self.in_flight.lock().expect("gate lock");
            in_flight.retain(|_, waiting| waiting.strong_count() > 0);
            match in_flight.get(key).and_then(Weak::upgrade) {
                Some(turn) => turn,
                None => {
                    let turn = Arc::new(tokio::sync::Mutex::new(()));
                    in_flight.insert(key.to_string(), Arc::downgrade(&turn));
                    turn
                }
            }
        };
        let turn = turn.lock_owned().await;
        let permit = self.permits.clone().acquire_owned().await.expect("the gate's semaphore is never closed");
        Pass { _turn: turn, _permit: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_runs_one_at_a_time_and_the_permits_bound_all_keys() {
        let gate = Arc::new(Gate::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let same_key_overlaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let key_busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = (0..12)
            .map(|n| {
                let (gate, running, most, overlaps, busy) =
                    (gate.clone(), running.clone(), most.clone(), same_key_overlaps.clone(), key_busy.clone());
                tokio::spawn(async move {
                    let key = if n % 2 == 0 { "same".to_string() } else { format!("key {n}") };
                    let _pass = gate.enter(&key).await;
                    if key == "same" && busy.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        overlaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    if key == "same" {
                        busy.store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(same_key_overlaps.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(gate.in_flight.lock().unwrap().values().all(|w| w.strong_count() == 0));
    }
}
