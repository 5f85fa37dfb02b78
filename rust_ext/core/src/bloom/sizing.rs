//! Sizing a blocked filter: its expected false-positive rate (the blocked formula), the hash count that
//! minimises it, and the one decision table ([`Sizing::resolve`]) that turns what users give into a size and a
//! hash count.
use super::{blocks_for_size, check_num_hashes, invalid, BloomFilter, Result};
use super::{BLOCK_BITS, BLOCK_BYTES, MAX_HASHES, MAX_SIZE_IN_BYTES};

pub(super) fn check_expected_items(expected_items: u64) -> Result<()> {
    if expected_items == 0 {
        Err(invalid("expected number of items must be positive, got 0".to_string()))
    } else {
        Ok(())
    }
}

pub(super) fn check_fp_rate(fp_rate: f64) -> Result<()> {
    if fp_rate > 0.0 && fp_rate < 1.0 {
        Ok(())
    } else {
        Err(invalid(format!("false positive rate must be strictly between 0 and 1, got {fp_rate}")))
    }
}

/// `ln(n!)`: exact summation for small `n`, Stirling's series (error below 1e-10) above.
pub(super) fn ln_factorial(n: u64) -> f64 {
    if n < 32 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x * x)
}

/// Expected false-positive rate of a blocked filter of `num_blocks` 512-bit blocks with `num_hashes` bits
/// per key after `items` distinct inserts.
///
/// The number of keys in a block is Poisson with mean `lambda = items / num_blocks`; a block holding `j` keys
/// (each setting `k` distinct bits of 512) has a given bit set with probability `1 - (1 - k/512)^j`, and a key
/// not inserted is reported present when its `k` bits are all set:
///
/// ```text
/// fpr = sum_j  Poisson(j; lambda) * (1 - (1 - k/512)^j)^k
/// ```
pub(super) fn blocked_fpr(num_blocks: u64, num_hashes: u32, items: u64) -> f64 {
    if items == 0 {
        return 0.0;
    }
    let lambda = items as f64 / num_blocks.max(1) as f64;
    let k = f64::from(num_hashes);
    let miss = (1.0 - k / BLOCK_BITS as f64).ln();
    let term = |j: u64, log_pmf: f64| log_pmf.exp() * (1.0 - (miss * j as f64).exp()).powf(k);
    // Sum outwards from the mode until the Poisson weights vanish.
    let mode = lambda.floor() as u64;
    let log_mode = mode as f64 * lambda.ln() - lambda - ln_factorial(mode);
    let mut total = term(mode, log_mode);
    let mut log_pmf = log_mode;
    let mut j = mode;
    while j > 0 {
        log_pmf += (j as f64).ln() - lambda.ln();
        j -= 1;
        let t = term(j, log_pmf);
        total += t;
        if log_pmf < -745.0 || (t < total * 1e-17 && (j as f64) < lambda) {
            break;
        }
    }
    let mut log_pmf = log_mode;
    let mut j = mode;
    loop {
        j += 1;
        log_pmf += lambda.ln() - (j as f64).ln();
        let t = term(j, log_pmf);
        total += t;
        if log_pmf < -745.0 || (t < total * 1e-17 && j as f64 > lambda) {
            break;
        }
    }
    total.min(1.0)
}

/// Expected false-positive rate of a filter of `size_in_bytes` (rounded up to whole 64-byte blocks) with
/// `num_hashes` bits per key once `items` distinct keys are in it (see [`blocked_fpr`] for the formula).
pub fn expected_false_positive_rate(size_in_bytes: usize, num_hashes: u32, items: u64) -> Result<f64> {
    let blocks = blocks_for_size(size_in_bytes)?;
    check_num_hashes(num_hashes)?;
    Ok(blocked_fpr(blocks as u64, num_hashes, items))
}

/// The hash count with the lowest expected false-positive rate, and that rate.
pub(super) fn best_hashes(num_blocks: u64, items: u64) -> (u32, f64) {
    (1..=MAX_HASHES).map(|k| (k, blocked_fpr(num_blocks, k, items))).fold((1, f64::INFINITY), |best, cur| {
        if cur.1 < best.1 {
            cur
        } else {
            best
        }
    })
}

/// What a new filter is sized from, as users give it (`dolma dedupe`'s `bloom_filter` section, the Python
/// constructor): the one decision table, [`Sizing::resolve`]. `None` means not given.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sizing {
    pub size_in_bytes: Option<u64>,
    pub num_hashes: Option<u32>,
    pub estimated_doc_count: Option<u64>,
    pub desired_false_positive_rate: Option<f64>,
    /// A size derived from the count and rate is never below this many bytes (an explicit size is used as
    /// given): an estimate far below the real number of keys would otherwise give a tiny filter that fills up.
    pub min_size_in_bytes: u64,
}

impl Sizing {
    /// `(size_in_bytes, num_hashes)` of a new filter:
    ///
    /// | given                                  | size                                   | hashes                         |
    /// |----------------------------------------|----------------------------------------|--------------------------------|
    /// | `size_in_bytes`                        | as given (whole 64-byte blocks)        | best for `estimated_doc_count`, else `round(-log2 rate)` |
    /// | `estimated_doc_count` and the rate     | [`BloomFilter::optimal_params`]        | from the same                  |
    /// | ... when that is below the floor       | `min_size_in_bytes`                    | the one that holds the most keys at the rate |
    ///
    /// `num_hashes`, when given, always wins. Anything else is an error naming what to add.
    pub fn resolve(&self) -> Result<(usize, u32)> {
        if let Some(k) = self.num_hashes {
            check_num_hashes(k)?;
        }
        if let Some(count) = self.estimated_doc_count {
            if count == 0 {
                return Err(invalid("estimated_doc_count must be positive, got 0".to_string()));
            }
        }
        if let Some(rate) = self.desired_false_positive_rate {
            if !(rate > 0.0 && rate < 1.0) {
                return Err(invalid(format!(
                    "desired_false_positive_rate must be strictly between 0 and 1, got {rate}"
                )));
            }
        }
        let (size, derived_k) =
            match (self.size_in_bytes, self.estimated_doc_count, self.desired_false_positive_rate) {
                (Some(size), count, rate) => {
                    let size =
                        usize::try_from(size).map_err(|_| invalid(format!("size_in_bytes {size} is too large")))?;
                    let blocks = blocks_for_size(size)?;
                    let k = match (count, rate) {
                        (Some(count), _) => Some(best_hashes(blocks as u64, count).0),
                        (None, Some(rate)) => Some(hashes_for_rate(rate)),
                        (None, None) => None,
                    };
                    (blocks * BLOCK_BYTES, k)
                }
                (None, Some(count), Some(rate)) => {
                    let (size, k) = BloomFilter::optimal_params(count, rate)?;
                    let floor = blocks_for_size(usize::try_from(self.min_size_in_bytes.max(1)).unwrap_or(usize::MAX))?;
                    if size < floor * BLOCK_BYTES {
                        (floor * BLOCK_BYTES, Some(floor_hashes(floor as u64, count, rate)))
                    } else {
                        (size, Some(k))
                    }
                }
                (None, Some(_), None) => return Err(invalid(
                    "estimated_doc_count needs desired_false_positive_rate to size the filter (or give size_in_bytes)"
                        .to_string(),
                )),
                (None, None, _) => {
                    return Err(invalid(
                        "either size_in_bytes or estimated_doc_count is required (estimated_doc_count with \
                     desired_false_positive_rate)"
                            .to_string(),
                    ))
                }
            };
        match self.num_hashes.or(derived_k) {
            Some(k) => Ok((size, k)),
            None => Err(invalid(
                "size_in_bytes alone does not choose the hash count: also give estimated_doc_count or \
                 desired_false_positive_rate (or num_hashes)"
                    .to_string(),
            )),
        }
    }
}

/// The hash count of a filter filled to its design rate `rate`: `round(-log2 rate)`, within `1..=MAX_HASHES`.
pub(super) fn hashes_for_rate(rate: f64) -> u32 {
    (-rate.log2()).round().clamp(1.0, f64::from(MAX_HASHES)) as u32
}

/// The hash count for a filter of `num_blocks` that is bigger than `items` keys at `rate` need (a size floor):
/// the best one for the largest number of keys the filter holds at `rate`, so that it stays within the rate
/// for as many keys beyond the estimate as possible.
pub(super) fn floor_hashes(num_blocks: u64, items: u64, rate: f64) -> u32 {
    let fits = |n: u64| best_hashes(num_blocks, n).1 <= rate;
    if !fits(items) {
        return best_hashes(num_blocks, items).0;
    }
    let (mut lo, mut hi) = (items, num_blocks.saturating_mul(BLOCK_BITS));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    best_hashes(num_blocks, lo).0
}

impl BloomFilter {
    /// Size (whole 64-byte blocks, in bytes) and hash count for `expected_items` keys at `fp_rate`.
    ///
    /// The smallest number of blocks whose best hash count (clamped to `1..=MAX_HASHES`) gives an expected
    /// false-positive rate ([`expected_false_positive_rate`]) of at most `fp_rate` after `expected_items`
    /// inserts. The search starts from the textbook size `-n ln p / (ln 2)^2` bits, which a blocked filter
    /// needs a little more than.
    pub fn optimal_params(expected_items: u64, fp_rate: f64) -> Result<(usize, u32)> {
        check_expected_items(expected_items)?;
        check_fp_rate(fp_rate)?;
        let ln2 = std::f64::consts::LN_2;
        let textbook = -(expected_items as f64) * fp_rate.ln() / (ln2 * ln2) / BLOCK_BITS as f64;
        let max_blocks = MAX_SIZE_IN_BYTES / BLOCK_BYTES as u64;
        let too_big = || {
            invalid(format!(
                "{expected_items} items at false positive rate {fp_rate} would need more than the maximum of \
                 {MAX_SIZE_IN_BYTES} bytes"
            ))
        };
        if !textbook.is_finite() || textbook > max_blocks as f64 {
            return Err(too_big());
        }
        let fits = |blocks: u64| best_hashes(blocks, expected_items).1 <= fp_rate;
        let start = (textbook.ceil() as u64).max(1);
        let lo = if fits(start) {
            // The textbook size is already enough (tiny filters): shrink down to the smallest that fits.
            Self::first_fitting(1, start, fits)
        } else {
            // Grow by 1/8 steps to a size that fits, then search the last step.
            let (mut lo, mut hi) = (start, start);
            while !fits(hi) {
                if hi >= max_blocks {
                    return Err(too_big());
                }
                lo = hi + 1;
                hi = hi.saturating_add(hi / 8 + 1).min(max_blocks);
            }
            Self::first_fitting(lo, hi, fits)
        };
        let size_in_bytes = usize::try_from(lo * BLOCK_BYTES as u64)
            .map_err(|_| invalid(format!("a filter of {lo} blocks does not fit in memory")))?;
        Ok((size_in_bytes, best_hashes(lo, expected_items).0))
    }

    /// The smallest `n` in `lo..=hi` with `fits(n)`, given that `fits(hi)` and that `fits` is monotone.
    fn first_fitting(mut lo: u64, mut hi: u64, fits: impl Fn(u64) -> bool) -> u64 {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        hi
    }

    /// Best hash count for a filter of `size_in_bytes` (rounded up to whole blocks) holding `expected_items`.
    pub fn optimal_num_hashes(size_in_bytes: usize, expected_items: u64) -> Result<u32> {
        let blocks = blocks_for_size(size_in_bytes)?;
        check_expected_items(expected_items)?;
        Ok(best_hashes(blocks as u64, expected_items).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bloom::BloomError;

    fn invalid_message<T: std::fmt::Debug>(result: Result<T>) -> String {
        match result {
            Err(BloomError::InvalidParameter(msg)) => msg,
            other => panic!("expected an invalid-parameter error, got {other:?}"),
        }
    }

    #[test]
    fn optimal_params_meet_the_rate_with_the_fewest_blocks() {
        for (n, p) in [(1_000_000u64, 0.01), (1_000_000, 1e-5), (6_000_000, 1e-5), (10_000, 1e-6), (1, 0.5)] {
            let (size, k) = BloomFilter::optimal_params(n, p).unwrap();
            assert_eq!(size % BLOCK_BYTES, 0);
            assert!(expected_false_positive_rate(size, k, n).unwrap() <= p, "n={n} p={p}");
            // One block less would not be enough with any hash count.
            if size > BLOCK_BYTES {
                let smaller =
                    (1..=MAX_HASHES).map(|k| expected_false_positive_rate(size - BLOCK_BYTES, k, n).unwrap());
                assert!(smaller.fold(f64::INFINITY, f64::min) > p, "n={n} p={p}");
            }
            // Blocking costs a little more memory than the textbook filter, not a lot.
            let textbook_bytes = -(n as f64) * p.ln() / (std::f64::consts::LN_2.powi(2)) / 8.0;
            if n >= 10_000 {
                assert!(size as f64 >= textbook_bytes && (size as f64) < textbook_bytes * 1.6, "n={n} p={p} {size}");
            }
        }
        let (_, k) = BloomFilter::optimal_params(1_000_000, 0.01).unwrap();
        assert!((6..=8).contains(&k), "{k}");
    }

    #[test]
    fn expected_rate_formula_limits() {
        // A sparse blocked filter is worse than the textbook one (keys share blocks) but still tiny; a saturated
        // one answers "present" to everything.
        let sparse = expected_false_positive_rate(1 << 20, 7, 1000).unwrap();
        let textbook = (1.0 - (-7.0 * 1000.0 / (8.0 * (1 << 20) as f64)).exp()).powi(7);
        assert!(sparse >= textbook && sparse < 1e-12, "{sparse} vs {textbook}");
        assert_eq!(expected_false_positive_rate(64, 3, 0).unwrap(), 0.0);
        let full = expected_false_positive_rate(64, 3, 1_000_000).unwrap();
        assert!(full > 0.999 && full <= 1.0, "{full}");
    }

    #[test]
    fn optimal_params_caps_the_number_of_hashes() {
        // The reference toolkit derived ~58k hash functions for a case like this one.
        let (_, k) = BloomFilter::optimal_params(100, 1e-30).unwrap();
        assert!((1..=MAX_HASHES).contains(&k));
        assert_eq!(MAX_HASHES, 32);
        let filter = BloomFilter::with_capacity(100, 1e-30, 0).unwrap();
        assert!(filter.num_hashes() <= 32);
        assert!(expected_false_positive_rate(filter.size_in_bytes(), filter.num_hashes(), 100).unwrap() <= 1e-30);
    }

    #[test]
    fn optimal_params_uses_at_least_one_hash_and_one_block() {
        let (size, k) = BloomFilter::optimal_params(1_000_000, 0.9).unwrap();
        assert!((1..=MAX_HASHES).contains(&k));
        assert!(size > 0);
        let (size, k) = BloomFilter::optimal_params(1, 0.5).unwrap();
        assert_eq!(size, BLOCK_BYTES);
        assert!((1..=MAX_HASHES).contains(&k));
    }

    #[test]
    fn sizing_table() {
        let sizing = |size: Option<u64>, k: Option<u32>, count: Option<u64>, rate: Option<f64>, floor: u64| Sizing {
            size_in_bytes: size,
            num_hashes: k,
            estimated_doc_count: count,
            desired_false_positive_rate: rate,
            min_size_in_bytes: floor,
        };
        // Count and rate: the optimal filter; below the floor, the floor with the hash count of its capacity.
        let optimal = BloomFilter::optimal_params(5000, 1e-3).unwrap();
        assert_eq!(sizing(None, None, Some(5000), Some(1e-3), 0).resolve().unwrap(), optimal);
        let (size, k) = sizing(None, None, Some(1000), Some(1e-5), 1 << 20).resolve().unwrap();
        assert_eq!(size, 1 << 20);
        let blocks = (size / BLOCK_BYTES) as u64;
        assert!(blocked_fpr(blocks, k, 1000) <= 1e-5);
        assert_ne!(k, best_hashes(blocks, 1000).0, "not the hash count for the estimate alone");
        let big = BloomFilter::optimal_params(400_000, 1e-6).unwrap();
        assert_eq!(sizing(None, None, Some(400_000), Some(1e-6), 1 << 20).resolve().unwrap(), big);
        // Explicit size: as given in whole blocks (no floor); hashes from the count, else the rate, else given.
        assert_eq!(sizing(Some(4100), Some(3), None, None, 1 << 20).resolve().unwrap(), (4160, 3));
        assert_eq!(sizing(Some(4096), None, None, Some(1e-6), 0).resolve().unwrap(), (4096, 20));
        let best = BloomFilter::optimal_num_hashes(4096, 50).unwrap();
        assert_eq!(sizing(Some(4096), None, Some(50), Some(1e-6), 0).resolve().unwrap(), (4096, best));
        assert_eq!(sizing(None, Some(2), Some(5000), Some(1e-2), 0).resolve().unwrap().1, 2);
        for (bad, want) in [
            (sizing(None, None, None, None, 0), "either size_in_bytes or estimated_doc_count"),
            (sizing(None, None, Some(10), None, 0), "needs desired_false_positive_rate"),
            (sizing(Some(64), None, None, None, 0), "size_in_bytes alone"),
            (sizing(None, None, Some(0), Some(0.1), 0), "estimated_doc_count must be positive"),
            (sizing(None, None, Some(10), Some(1.0), 0), "strictly between 0 and 1"),
            (sizing(Some(64), Some(33), None, None, 0), "num_hashes must be between"),
            (sizing(Some(0), Some(3), None, None, 0), "size_in_bytes must be positive"),
        ] {
            let msg = invalid_message(bad.resolve());
            assert!(msg.contains(want), "{want}: {msg}");
        }
    }

    #[test]
    fn optimal_num_hashes_for_a_fixed_size() {
        let k = BloomFilter::optimal_num_hashes(125_000, 100_000).unwrap();
        assert!((6..=8).contains(&k), "{k}");
        assert_eq!(BloomFilter::optimal_num_hashes(1 << 20, 100).unwrap(), MAX_HASHES);
        assert_eq!(BloomFilter::optimal_num_hashes(64, 1_000_000).unwrap(), 1);
        // Rounded up to whole blocks first: 1 byte acts as 512 bits.
        assert_eq!(BloomFilter::optimal_num_hashes(1, 1).unwrap(), BloomFilter::optimal_num_hashes(64, 1).unwrap());
    }
}
