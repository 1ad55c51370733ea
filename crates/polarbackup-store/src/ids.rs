//! Fresh random identifiers and secrets in the shapes Alibaba Cloud uses.

use rand::distributions::{Alphanumeric, Distribution, Uniform};
use rand::Rng;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// 16 digits, first one non-zero.
pub fn account_id() -> String {
    let mut rng = rand::thread_rng();
    let first = rng.gen_range(1..=9u8);
    let rest: String = (0..15)
        .map(|_| char::from(b'0' + rng.gen_range(0..=9u8)))
        .collect();
    format!("{first}{rest}")
}

/// `LTAI` and 20 letters or digits.
pub fn access_key_id() -> String {
    format!("LTAI{}", alnum(20))
}

/// 30 letters or digits, from the OS-seeded CSPRNG.
pub fn access_key_secret() -> String {
    alnum(30)
}

/// `pc-` and 15 lower-case letters or digits.
pub fn cluster_id() -> String {
    let mut rng = rand::thread_rng();
    let pick = Uniform::from(0..LOWER_ALNUM.len());
    let suffix: String = (0..15)
        .map(|_| char::from(LOWER_ALNUM[pick.sample(&mut rng)]))
        .collect();
    format!("pc-{suffix}")
}

fn alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use polarbackup_model::{AccessKeyId, AccountId, DbClusterId};

    #[test]
    fn generated_ids_are_valid() {
        for _ in 0..200 {
            assert!(AccountId::parse(&super::account_id()).is_ok());
            assert!(DbClusterId::parse(&super::cluster_id()).is_ok());
            assert!(AccessKeyId::parse(&super::access_key_id()).is_ok());
            assert_eq!(super::access_key_secret().len(), 30);
        }
    }
}
