//! Pairing codes: `<1–999>-<word>-<word>-<word>` drawn from the OS RNG.

use jrun_mesh::PairCode;

/// The words of pairing codes: BIP-39's English list (compiled into the binary), 2048
/// distinct lowercase words of 3–8 letters whose first four letters already tell them apart.
pub fn words() -> &'static [&'static str; 2048] {
    bip39::Language::English.word_list()
}

/// A fresh random code (about 4·10¹² possibilities). Fails only if the OS RNG does.
pub fn draw_code() -> Result<PairCode, getrandom::Error> {
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)?;
        let r = u64::from_le_bytes(bytes);
        let number = (r & 0xffff) as u32;
        // Rejection keeps 1–999 uniform: 64935 = 65 × 999.
        if number >= 64935 {
            continue;
        }
        let word = |shift: u32| words()[((r >> shift) & 0x7ff) as usize];
        let text = format!(
            "{}-{}-{}-{}",
            number % 999 + 1,
            word(16),
            word(27),
            word(38)
        );
        return Ok(text
            .parse()
            .expect("the word list holds only lowercase words"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_word_list_is_short_distinct_and_typeable() {
        let set: HashSet<_> = words().iter().collect();
        assert_eq!(set.len(), 2048);
        assert!(words()
            .iter()
            .all(|w| (3..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())));
    }

    #[test]
    fn codes_are_valid_and_spread() {
        let codes: Vec<PairCode> = (0..2000).map(|_| draw_code().unwrap()).collect();
        let distinct: HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
        let numbers: HashSet<u32> = codes
            .iter()
            .map(|c| c.as_str().split('-').next().unwrap().parse().unwrap())
            .collect();
        assert!(numbers.iter().all(|n| (1..=999).contains(n)));
        // 2000 draws from 999 numbers leave very few unseen.
        assert!(numbers.len() > 800, "{}", numbers.len());
    }
}
