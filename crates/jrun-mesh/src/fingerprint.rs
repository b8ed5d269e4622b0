//! The fingerprint of a pairing: a few words both sides print, computed from the code and
//! both rosters in one canonical order, so two people can compare them over the phone.

use sha2::{Digest, Sha256};

use crate::pair_v2::words;
use crate::protocol::Roster;
use crate::PairCode;

/// Four words (44 bits of SHA-256) over the code, the creator's roster, then the
/// joiner's, each roster as its `name address` lines sorted by name. Both sides compute
/// the same words exactly when they hold the same code and the same two rosters.
pub fn fingerprint(code: &PairCode, creator: &Roster, joiner: &Roster) -> String {
    let mut h = Sha256::new();
    h.update(b"jrun pairing fingerprint 1\n");
    h.update(format!("code {code}\n").as_bytes());
    for (label, roster) in [("creator", creator), ("joiner", joiner)] {
        let mut lines: Vec<String> = roster
            .jails
            .iter()
            .map(|j| format!("{} {}\n", j.name, j.ygg_address))
            .collect();
        lines.sort();
        h.update(format!("{label} {}\n", lines.len()).as_bytes());
        for l in lines {
            h.update(l.as_bytes());
        }
    }
    let d = h.finalize();
    let bits = u64::from_be_bytes(d[..8].try_into().expect("32 bytes"));
    (0..4)
        .map(|i| words()[((bits >> (53 - 11 * i)) & 0x7ff) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RosterJail;

    fn roster(entries: &[(&str, &str)]) -> Roster {
        Roster {
            jails: entries
                .iter()
                .map(|(n, a)| RosterJail {
                    name: n.to_string().try_into().unwrap(),
                    ygg_address: a.parse().unwrap(),
                })
                .collect(),
        }
    }

    #[test]
    fn equal_inputs_equal_words_in_any_order_and_a_swap_changes_them() {
        let code: PairCode = "81-zephyr-night-climb".parse().unwrap();
        let a = roster(&[("web", "200::1"), ("db", "200::2")]);
        let a_reordered = roster(&[("db", "200::2"), ("web", "200::1")]);
        let b = roster(&[("app", "201::1")]);
        let f = fingerprint(&code, &a, &b);
        assert_eq!(f.split(' ').count(), 4);
        assert_eq!(f, fingerprint(&code, &a_reordered, &b));
        // The roles count: creator's first.
        assert_ne!(f, fingerprint(&code, &b, &a));
        // A swapped roster, another code: other words.
        assert_ne!(f, fingerprint(&code, &a, &roster(&[("app", "201::2")])));
        assert_ne!(
            f,
            fingerprint(&"82-zephyr-night-climb".parse().unwrap(), &a, &b)
        );
    }
}
