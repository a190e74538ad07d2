//! Pseudonyms: what labelers see of a patient instead of their name or ID.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::headers::PatientRecord;

/// Crockford's base32 alphabet: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `P-` and ten characters of HMAC-SHA256 under the deployment's `key` of the patient's ID and
/// its issuer: the same for every series of one patient, so cases group (and dataset splits can
/// keep a patient on one side) without anyone seeing who it is; without the key, no way back.
/// A series without a PatientID gets one per study.
pub(crate) fn pseudonym(key: &[u8], patient: &PatientRecord, study_instance_uid: &str) -> String {
    let subject = match &patient.patient_id {
        Some(id) => format!("patient\u{0}{}\u{0}{id}", patient.issuer_of_patient_id.as_deref().unwrap_or_default()),
        None => format!("study\u{0}{study_instance_uid}"),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(subject.as_bytes());
    let digest = mac.finalize().into_bytes();
    let bits = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"));
    let code: String = (0..10).map(|n| char::from(ALPHABET[(bits >> (59 - 5 * n)) as usize & 31])).collect();
    format!("P-{code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(id: Option<&str>) -> PatientRecord {
        PatientRecord {
            patient_id: id.map(str::to_string),
            patient_name: Some("Doe^Jane".into()),
            ..Default::default()
        }
    }

    #[test]
    fn one_patient_one_pseudonym_per_key() {
        let jane = pseudonym(b"key", &patient(Some("MRN-1")), "1.2.3");
        assert_eq!(jane, pseudonym(b"key", &patient(Some("MRN-1")), "1.2.4"), "another study of the same patient");
        assert_ne!(jane, pseudonym(b"key", &patient(Some("MRN-2")), "1.2.3"));
        assert_ne!(jane, pseudonym(b"other key", &patient(Some("MRN-1")), "1.2.3"));
        assert_ne!(pseudonym(b"key", &patient(None), "1.2.3"), pseudonym(b"key", &patient(None), "1.2.4"));
        assert!(jane.starts_with("P-") && jane.len() == 12, "{jane}");
        assert!(jane[2..].bytes().all(|c| ALPHABET.contains(&c)));
    }
}
