// Longer than 400 lines because the filter's and its file format's tests share the fixtures here.
//! Tests of the filter's hashing, inserts and lookups and of its file format (one file: they share the
//! fixtures below); the sizing tests are next to the sizing code, in `sizing.rs`.
use std::fs;

use super::format::*;
use super::*;
use std::ffi::OsString;

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}-{i}").into_bytes()
}

fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| key(prefix, i)).collect()
}

fn format_message(result: Result<BloomFilter>) -> String {
    match result {
        Err(BloomError::Format(msg)) => msg,
        Err(other) => panic!("expected a format error, got {other:?}"),
        Ok(filter) => panic!("expected a format error, got {filter:?}"),
    }
}

fn invalid_message<T: fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(BloomError::InvalidParameter(msg)) => msg,
        other => panic!("expected an invalid-parameter error, got {other:?}"),
    }
}

/// A small filter with a few keys, serialized: the base for the corrupt-file cases.
fn sample_bytes() -> Vec<u8> {
    let filter = BloomFilter::new(256, 5, 7).unwrap();
    filter.insert_batch(&keys("sample", 20));
    filter.to_bytes()
}

/// The bit data of a filter without a manifest (the header and the checksum cover counts and seeds too).
fn bits(filter: &BloomFilter) -> Vec<u8> {
    let bytes = filter.to_bytes();
    bytes[HEADER_LEN..bytes.len() - TRAILER_LEN].to_vec()
}

fn put_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn invalid_parameters_are_rejected() {
    assert!(invalid_message(BloomFilter::optimal_params(0, 0.01)).contains("positive"));
    for p in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        assert!(invalid_message(BloomFilter::optimal_params(10, p)).contains("false positive rate"), "p={p}");
    }
    assert!(invalid_message(BloomFilter::optimal_params(u64::MAX, 1e-300)).contains("maximum"));
    assert!(invalid_message(BloomFilter::optimal_num_hashes(0, 10)).contains("size_in_bytes"));
    invalid_message(BloomFilter::optimal_num_hashes(8, 0));
    assert!(invalid_message(BloomFilter::new(0, 3, 0)).contains("size_in_bytes"));
    assert!(invalid_message(BloomFilter::new(8, 0, 0)).contains("num_hashes"));
    assert!(invalid_message(BloomFilter::new(8, MAX_HASHES + 1, 0)).contains("num_hashes"));
    let too_big = usize::try_from(MAX_SIZE_IN_BYTES + 8).unwrap_or(usize::MAX);
    assert!(invalid_message(BloomFilter::new(too_big, 3, 0)).contains("maximum"));
    invalid_message(BloomFilter::with_capacity(0, 0.01, 0));
}

#[test]
fn size_is_rounded_up_to_whole_blocks() {
    let filter = BloomFilter::new(13, 3, 0).unwrap();
    assert_eq!(filter.size_in_bytes(), 64);
    assert_eq!(filter.num_bits(), 512);
    assert_eq!(filter.num_hashes(), 3);
    let filter = BloomFilter::new(65, 1, 0).unwrap();
    assert_eq!(filter.num_bits(), 1024);
}

// ---------------------------------------------------------------- hashing

#[test]
fn hash_library_and_seed_derivation_are_pinned() {
    // Published XXH3-64 value of the empty input: guards against a silently different hash function.
    assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    let (s1, s2) = derive_seeds(0);
    assert_eq!(s1, 0);
    assert_ne!(s2, 0);
    assert_eq!(derive_seeds(12345).0, 12345);
    assert_ne!(derive_seeds(1).1, derive_seeds(2).1);
}

#[test]
fn file_bytes_are_pinned_across_builds() {
    // If this changes, filters saved by earlier builds would give different answers: bump VERSION instead.
    let filter = BloomFilter::new(1024, 7, 42).unwrap();
    filter.insert_batch(&keys("golden", 100));
    let bytes = filter.to_bytes();
    assert_eq!(bytes.len(), HEADER_LEN + 1024 + TRAILER_LEN);
    let bits = &bytes[HEADER_LEN..HEADER_LEN + 1024];
    // The bits are those of format version 2 (same hashing and layout; only the envelope changed): rebuilt in
    // that envelope (checksum of the bits where the manifest length is now), they hash to its golden value.
    let mut v2 = bytes[..HEADER_LEN].to_vec();
    put_u32(&mut v2, 8, 2);
    put_u64(&mut v2, 48, xxhash_rust::xxh3::xxh3_64(bits));
    v2.extend_from_slice(bits);
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&v2), GOLDEN_V2_FILE_HASH);
    let got = xxhash_rust::xxh3::xxh3_64(&bytes);
    assert_eq!(got, GOLDEN_FILE_HASH, "got {got:#018x}");
}

const GOLDEN_V2_FILE_HASH: u64 = 0x1b9b_5051_3296_f5d1;
const GOLDEN_FILE_HASH: u64 = 0x89ac_b31c_eec9_22f3;

#[test]
fn probed_bits_follow_the_documented_formula() {
    use xxhash_rust::xxh3::xxh3_128_with_seed;
    let filter = BloomFilter::new(5 * 64, 9, 1234).unwrap();
    let (seed1, seed2) = filter.seeds();
    let blocks = 5u128;
    let mut expected = vec![0u64; 5 * 8];
    for k in keys("formula", 7) {
        filter.insert(&k);
        let h = xxh3_128_with_seed(&k, seed1);
        let lo = h as u64;
        let hi = (h >> 64) as u64 ^ seed2;
        let block = ((u128::from(lo) * blocks) >> 64) as usize;
        let mut x = hi;
        let mut bits = std::collections::BTreeSet::new();
        while bits.len() < 9 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            bits.insert(x >> 55);
        }
        for bit in bits {
            expected[block * 8 + (bit / 64) as usize] |= 1 << (bit % 64);
        }
    }
    let bytes = filter.to_bytes();
    let data = &bytes[HEADER_LEN..bytes.len() - TRAILER_LEN];
    let words: Vec<u64> = data.chunks_exact(8).map(le_u64).collect();
    assert_eq!(words, expected);
}

#[test]
fn keys_of_another_domain_are_other_keys() {
    let filter = BloomFilter::new(1 << 16, 7, 3).unwrap();
    assert!(!filter.insert_probed(filter.probe_of(b"abc")));
    assert!(filter.contains(b"abc"));
    assert!(!filter.contains_probed(filter.probe_of_in(b"abc", 0xFE)));
    assert!(filter.contains_probed(filter.probe_of_in(b"abc", 0)));
}

#[test]
fn probes_cover_distinct_bits_in_one_block() {
    // 512 bits, 32 hashes: 32 distinct positions.
    let filter = BloomFilter::new(64, 32, 3).unwrap();
    filter.insert(b"x");
    assert_eq!(filter.bits_set(), 32);
    assert!(filter.contains(b"x"));
}

// ---------------------------------------------------------------- membership

#[test]
fn no_false_negatives() {
    let filter = BloomFilter::with_capacity(50_000, 0.01, 1).unwrap();
    let inserted = keys("member", 50_000);
    for k in &inserted {
        filter.insert(k);
    }
    assert!(inserted.iter().all(|k| filter.contains(k)));
    assert!(filter.contains_batch(&inserted).into_iter().all(|x| x));
    // Re-inserting reports every key as present.
    assert!(inserted.iter().all(|k| filter.insert(k)));
}

#[test]
fn empty_key_is_a_key() {
    let filter = BloomFilter::new(64, 4, 0).unwrap();
    assert!(!filter.contains(b""));
    assert!(!filter.insert(b""));
    assert!(filter.contains(b""));
}

#[test]
fn observed_false_positive_rate_is_near_the_bound() {
    let p = 0.01;
    let n = 100_000;
    let filter = BloomFilter::with_capacity(n as u64, p, 2).unwrap();
    filter.insert_batch(&keys("in", n));
    let hits = filter.contains_batch(&keys("out", n)).into_iter().filter(|&x| x).count();
    let observed = hits as f64 / n as f64;
    assert!(observed > p / 3.0 && observed < p * 1.3, "observed {observed}, configured {p}");
    let estimated = filter.estimated_false_positive_rate();
    assert!(estimated < p * 1.1 && estimated > p / 3.0, "estimated {estimated}");
    assert!((estimated - observed).abs() < 0.003, "estimated {estimated}, observed {observed}");
    // A few false positives may make inserts look like repeats, never more than a fraction of p.
    assert!(filter.inserted() <= n as u64 && filter.inserted() as f64 >= n as f64 * (1.0 - p));
}

#[test]
fn low_false_positive_rates_hold_in_crowded_blocks() {
    // ~20 keys per block at 1e-5: positions must not repeat between keys of a block (a position scheme with
    // few bits of entropy per key would put a floor of ~1e-4 under the rate here).
    let p = 1e-5;
    let n = 200_000;
    let filter = BloomFilter::with_capacity(n as u64, p, 4).unwrap();
    filter.insert_batch(&keys("in", n));
    let lookups = 2_000_000;
    let hits = filter.contains_batch(&keys("out", lookups)).into_iter().filter(|&x| x).count();
    assert!((hits as f64) < 3.0 * p * lookups as f64, "{hits} false positives in {lookups}");
    assert!(filter.estimated_false_positive_rate() < 1.5 * p);
}

#[test]
fn insert_reports_previous_presence_and_counts_new_keys() {
    let filter = BloomFilter::new(4096, 7, 0).unwrap();
    assert!(!filter.insert(b"a"));
    assert!(filter.insert(b"a"));
    assert!(!filter.insert(b"b"));
    assert_eq!(filter.inserted(), 2);
    assert!(filter.bits_set() >= 7 && filter.bits_set() <= 14);
}

#[test]
fn batch_calls_agree_with_single_calls() {
    let a = BloomFilter::new(1 << 16, 6, 9).unwrap();
    let b = BloomFilter::new(1 << 16, 6, 9).unwrap();
    let batch = keys("agree", 10_000);
    assert_eq!(a.insert_batch(&batch), 10_000 - batch.iter().filter(|k| b.insert(k)).count());
    assert_eq!(a.to_bytes(), b.to_bytes());
    let probe = keys("agree", 20_000);
    let singles: Vec<bool> = probe.iter().map(|k| b.contains(k)).collect();
    assert_eq!(a.contains_batch(&probe), singles);
    // Works with any AsRef<[u8]> key type, including &[u8] slices.
    let slices: Vec<&[u8]> = probe.iter().map(|k| k.as_slice()).collect();
    assert_eq!(a.contains_batch(&slices), singles);
}

#[test]
fn contains_or_insert_batch_is_sequential_within_a_batch() {
    let filter = BloomFilter::new(1 << 16, 7, 0).unwrap();
    let batch: Vec<&[u8]> = vec![b"a", b"b", b"a", b"c", b"b", b"a"];
    assert_eq!(filter.contains_or_insert_batch(&batch), vec![false, false, true, false, true, true]);
    assert_eq!(filter.inserted(), 3);
    assert_eq!(filter.contains_or_insert_batch(&batch), vec![true; 6]);
    assert_eq!(filter.inserted(), 3);
}

#[test]
fn contains_or_insert_batch_large_batch_with_duplicates_matches_sequential_inserts() {
    // Large enough that hashing is split across rayon tasks.
    let batch: Vec<Vec<u8>> = (0..40_000).map(|i| key("dup", i % 1000)).collect();
    let filter = BloomFilter::new(1 << 20, 7, 5).unwrap();
    let result = filter.contains_or_insert_batch(&batch);
    assert!(result[..1000].iter().all(|&x| !x), "a filter this sparse has no false positive here");
    assert!(result[1000..].iter().all(|&x| x));
    assert_eq!(filter.inserted(), 1000);

    let sequential = BloomFilter::new(1 << 20, 7, 5).unwrap();
    let expected: Vec<bool> = batch.iter().map(|k| sequential.insert(k)).collect();
    assert_eq!(result, expected);
    assert_eq!(filter.to_bytes(), sequential.to_bytes());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // A small, crowded filter so false positives (which depend on order) actually occur.
    let batch: Vec<Vec<u8>> = (0..30_000).map(|i| key("threads", i % 20_000)).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let filter = BloomFilter::new(8 * 1024, 4, 11).unwrap();
            let result = filter.contains_or_insert_batch(&batch);
            (result, filter.to_bytes())
        })
    };
    let (one_result, one_bytes) = run(1);
    let (four_result, four_bytes) = run(4);
    assert_eq!(one_result, four_result);
    assert_eq!(one_bytes, four_bytes);
    assert!(one_result[..20_000].iter().any(|&x| x), "expected some false positives in a crowded filter");
}

#[test]
fn concurrent_inserts_lose_nothing() {
    let filter = BloomFilter::new(1 << 18, 7, 3).unwrap();
    let all = keys("concurrent", 40_000);
    std::thread::scope(|scope| {
        for chunk in all.chunks(10_000) {
            let filter = &filter;
            scope.spawn(move || {
                for k in chunk {
                    filter.insert(k);
                }
            });
        }
    });
    assert!(all.iter().all(|k| filter.contains(k)));
    let sequential = BloomFilter::new(1 << 18, 7, 3).unwrap();
    sequential.insert_batch(&all);
    // Bitwise OR is order-independent, so the bits are identical.
    assert_eq!(bits(&filter), bits(&sequential));
}

#[test]
fn clear_resets_everything() {
    let filter = BloomFilter::new(1024, 5, 0).unwrap();
    filter.insert_batch(&keys("clear", 100));
    assert!(filter.bits_set() > 0);
    filter.clear();
    assert_eq!(filter.bits_set(), 0);
    assert_eq!(filter.inserted(), 0);
    assert_eq!(filter.estimated_false_positive_rate(), 0.0);
    assert!(!filter.contains(&key("clear", 0)));
    assert_eq!(filter.to_bytes(), BloomFilter::new(1024, 5, 0).unwrap().to_bytes());
}

// ---------------------------------------------------------------- determinism

#[test]
fn same_seed_and_keys_give_identical_bytes() {
    let make = |seed| {
        let filter = BloomFilter::new(4096, 6, seed).unwrap();
        filter.insert_batch(&keys("determinism", 500));
        filter
    };
    assert_eq!(make(17).to_bytes(), make(17).to_bytes());
    let (a, b) = (make(17), make(18));
    assert_ne!(a.seeds(), b.seeds());
    assert_ne!(bits(&a), bits(&b));
}

// ---------------------------------------------------------------- persistence

#[test]
fn header_layout_is_as_documented() {
    let filter = BloomFilter::new(256, 5, 7).unwrap();
    filter.insert(b"k");
    filter.set_manifest("{\"inputs\":[]}".to_string()).unwrap();
    let bytes = filter.to_bytes();
    assert_eq!(&bytes[0..8], b"DOLMABLF");
    assert_eq!(le_u32(&bytes[8..12]), VERSION);
    assert_eq!(le_u32(&bytes[12..16]), 5);
    assert_eq!(le_u64(&bytes[16..24]), 2048);
    assert_eq!(VERSION, 3);
    assert_eq!((le_u64(&bytes[24..32]), le_u64(&bytes[32..40])), filter.seeds());
    assert_eq!(le_u64(&bytes[40..48]), 1);
    assert_eq!(le_u64(&bytes[48..56]), 13);
    assert_eq!(&bytes[56..69], b"{\"inputs\":[]}");
    assert_eq!(bytes.len(), HEADER_LEN + 13 + 256 + TRAILER_LEN);
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    assert_eq!(le_u64(trailer), xxhash_rust::xxh3::xxh3_64(body));
    let ones: u32 = body[69..].iter().map(|b| b.count_ones()).sum();
    assert_eq!(u64::from(ones), filter.bits_set());
}

#[test]
fn manifest_round_trips_and_is_checked() {
    let filter = BloomFilter::new(4096, 4, 3).unwrap();
    filter.insert_batch(&keys("m", 50));
    assert_eq!(filter.manifest(), "");
    filter.set_manifest("ünïcode manifest".to_string()).unwrap();
    let bytes = filter.to_bytes();
    let back = BloomFilter::from_bytes(&bytes).unwrap();
    assert_eq!(back.manifest(), "ünïcode manifest");
    assert_eq!(BloomFilter::read_from(bytes.as_slice()).unwrap().manifest(), "ünïcode manifest");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.bin");
    filter.save(&path).unwrap();
    assert_eq!(BloomFilter::load(&path).unwrap().to_bytes(), bytes);
    filter.clear();
    assert_eq!(filter.manifest(), "");
}

#[test]
fn every_flipped_bit_is_an_error() {
    // Version 2 checksummed only the bits: a flipped hash count or seed loaded silently and gave other answers.
    let filter = BloomFilter::new(256, 5, 7).unwrap();
    filter.insert_batch(&keys("flip", 20));
    filter.set_manifest("{\"settings\":{}}".to_string()).unwrap();
    let good = filter.to_bytes();
    for offset in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[offset] ^= 1 << bit;
            match BloomFilter::from_bytes(&bad) {
                Err(BloomError::Format(_)) => {}
                other => panic!("byte {offset} bit {bit}: expected a format error, got {other:?}"),
            }
        }
    }
}

#[test]
fn bytes_round_trip() {
    let filter = BloomFilter::with_capacity(1000, 0.001, 99).unwrap();
    filter.insert_batch(&keys("round", 1000));
    let bytes = filter.to_bytes();
    let back = BloomFilter::from_bytes(&bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.seeds(), filter.seeds());
    assert_eq!(back.num_hashes(), filter.num_hashes());
    assert_eq!(back.num_bits(), filter.num_bits());
    assert_eq!(back.inserted(), filter.inserted());
    assert!(back.inserted() >= 995);
    assert!(keys("round", 1000).iter().all(|k| back.contains(k)));

    let via_reader = BloomFilter::read_from(bytes.as_slice()).unwrap();
    assert_eq!(via_reader.to_bytes(), bytes);
    let mut written = Vec::new();
    filter.write_to(&mut written).unwrap();
    assert_eq!(written, bytes);
}

#[test]
fn save_load_round_trip_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filter.bin");
    let filter = BloomFilter::with_capacity(5000, 0.01, 4).unwrap();
    filter.insert_batch(&keys("disk", 5000));
    filter.save(&path).unwrap();
    let loaded = BloomFilter::load(&path).unwrap();
    assert_eq!(loaded.to_bytes(), filter.to_bytes());
    assert!(keys("disk", 5000).iter().all(|k| loaded.contains(k)));
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsString::from("filter.bin")]);

    // Saving again replaces the file atomically.
    loaded.insert(b"one more");
    loaded.save(&path).unwrap();
    assert!(BloomFilter::load(&path).unwrap().contains(b"one more"));
}

#[test]
fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.bin");
    match BloomFilter::load(&missing) {
        Err(err @ BloomError::Io { .. }) => {
            assert!(err.to_string().contains("missing.bin"), "{err}");
            if let BloomError::Io { path, source } = err {
                assert_eq!(path.as_deref(), Some(missing.as_path()));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let filter = BloomFilter::new(64, 2, 0).unwrap();
    let bad = dir.path().join("no-such-dir").join("f.bin");
    match filter.save(&bad) {
        Err(err @ BloomError::Io { .. }) => assert!(err.to_string().contains("f.bin"), "{err}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn bad_magic_is_not_a_dolma_file() {
    let mut bytes = sample_bytes();
    bytes[0] = b'X';
    assert!(format_message(BloomFilter::from_bytes(&bytes)).contains("not a dolma bloom filter file"));
    assert!(format_message(BloomFilter::read_from(bytes.as_slice())).contains("not a dolma bloom filter file"));
    // Even when it is too short to be anything.
    let msg = format_message(BloomFilter::from_bytes(b"PK\x03\x04 a zip file"));
    assert!(msg.contains("not a dolma bloom filter file"), "{msg}");
}

#[test]
fn other_versions_are_named() {
    let mut bytes = sample_bytes();
    // Version 1 (unblocked layout) and 2 (no manifest, bits-only checksum): refused, saying how to rebuild.
    for old in [1, 2] {
        put_u32(&mut bytes, 8, old);
        let msg = format_message(BloomFilter::from_bytes(&bytes));
        assert!(msg.contains(&format!("version {old} was written by an earlier version")), "{msg}");
        assert!(msg.contains("version 3") && msg.contains("--ignore_existing"), "{msg}");
    }
    put_u32(&mut bytes, 8, 4);
    let msg = format_message(BloomFilter::from_bytes(&bytes));
    assert!(msg.contains("version 4") && msg.contains("version 3"), "{msg}");
}

type Mutation = fn(&mut Vec<u8>);

#[test]
fn bad_header_fields_are_corrupt() {
    let cases: [(&str, Mutation); 6] = [
        ("num_hashes 0", |b| put_u32(b, 12, 0)),
        ("num_hashes 33", |b| put_u32(b, 12, 33)),
        ("num_bits 0", |b| put_u64(b, 16, 0)),
        ("num_bits 100", |b| put_u64(b, 16, 100)),
        ("num_bits 64", |b| put_u64(b, 16, 64)),
        ("num_bits too large", |b| put_u64(b, 16, (u64::MAX / 2 + 1) + 2048)),
    ];
    for (want, mutate) in cases {
        let mut bytes = sample_bytes();
        mutate(&mut bytes);
        let msg = format_message(BloomFilter::from_bytes(&bytes));
        assert!(msg.contains("corrupt"), "{msg}");
        assert!(msg.contains(want.split(' ').next().unwrap()), "{want}: {msg}");
    }
}

#[test]
fn truncated_input_is_corrupt_with_sizes() {
    let bytes = sample_bytes();
    let expected = bytes.len();
    for (cut, part) in [
        (expected - 1, "checksum"),
        (expected - TRAILER_LEN, "checksum"),
        (HEADER_LEN + 3, "bit data"),
        (HEADER_LEN, "bit data"),
    ] {
        let short = &bytes[..cut];
        let msg = format_message(BloomFilter::from_bytes(short));
        assert!(msg.contains("corrupt") && msg.contains("truncated"), "{msg}");
        assert!(msg.contains(&expected.to_string()) && msg.contains(&cut.to_string()), "{msg}");
        // The streaming reader does not know the length up front but says which part is short.
        let msg = format_message(BloomFilter::read_from(short));
        assert!(msg.contains(&format!("truncated {part}")), "{msg}");
    }
    for cut in [0, 7, 8, 20, HEADER_LEN - 1] {
        let msg = format_message(BloomFilter::from_bytes(&bytes[..cut]));
        assert!(msg.contains("truncated header") && msg.contains(&format!("found {cut}")), "{msg}");
    }
    let with_manifest = BloomFilter::new(256, 5, 7).unwrap();
    with_manifest.set_manifest("x".repeat(100)).unwrap();
    let msg = format_message(BloomFilter::read_from(&with_manifest.to_bytes()[..HEADER_LEN + 50]));
    assert!(msg.contains("truncated manifest: expected 100 bytes, found 50"), "{msg}");
}

#[test]
fn trailing_data_is_corrupt() {
    let mut bytes = sample_bytes();
    bytes.extend_from_slice(b"extra");
    let msg = format_message(BloomFilter::from_bytes(&bytes));
    assert!(msg.contains("trailing data"), "{msg}");
}

#[test]
fn flipped_data_byte_fails_the_checksum() {
    let mut bytes = sample_bytes();
    bytes[HEADER_LEN + 17] ^= 0x10; // a data byte (the sample has no manifest)
    let msg = format_message(BloomFilter::from_bytes(&bytes));
    assert!(msg.contains("checksum mismatch"), "{msg}");
    let msg = format_message(BloomFilter::read_from(bytes.as_slice()));
    assert!(msg.contains("checksum mismatch"), "{msg}");
}

#[test]
fn huge_claimed_size_is_an_error_not_a_crash() {
    // A header claiming 512 TiB of bits followed by nothing: no abort, no giant allocation survives.
    let mut bytes = sample_bytes()[..HEADER_LEN].to_vec();
    put_u64(&mut bytes, 16, 1 << 52);
    assert!(BloomFilter::from_bytes(&bytes).is_err());
    match BloomFilter::read_from(bytes.as_slice()) {
        Err(BloomError::Format(_)) | Err(BloomError::Io { .. }) => {}
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn corrupt_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.bin");
    let good = sample_bytes();

    fs::write(&path, &good[..good.len() - 8]).unwrap();
    let msg = format_message(BloomFilter::load(&path));
    assert!(msg.contains("bad.bin") && msg.contains("truncated"), "{msg}");
    assert!(msg.contains(&good.len().to_string()) && msg.contains(&(good.len() - 8).to_string()), "{msg}");

    let mut flipped = good.clone();
    flipped[good.len() - 1] ^= 1;
    fs::write(&path, &flipped).unwrap();
    assert!(format_message(BloomFilter::load(&path)).contains("checksum mismatch"));

    fs::write(&path, b"").unwrap();
    assert!(format_message(BloomFilter::load(&path)).contains("truncated header"));

    let mut wrong_magic = good.clone();
    wrong_magic[..8].copy_from_slice(b"NOTBLOOM");
    fs::write(&path, &wrong_magic).unwrap();
    assert!(format_message(BloomFilter::load(&path)).contains("not a dolma bloom filter file"));
}

#[test]
fn errors_display_without_panicking() {
    let err = BloomError::from(io::Error::other("boom"));
    assert_eq!(err.to_string(), "I/O error: boom");
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(BloomError::Format("x".into()).to_string(), "x");
}

#[test]
fn masks_equal_the_sequential_definition() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for k in 1..=MAX_HASHES {
        let filter = BloomFilter::new(4096, k, 3).unwrap();
        for _ in 0..20_000 {
            state = state.wrapping_mul(LCG_MUL).wrapping_add(0x1234_5678_9ABC_DEF1) ^ (state >> 29);
            let probe = Probe { block: 0, state };
            let masks = filter.masks(probe);
            assert_eq!(masks, filter.masks_sequential(probe), "k={k} state={state:#x}");
            assert_eq!(masks.iter().map(|m| m.count_ones()).sum::<u32>(), k);
        }
    }
}
