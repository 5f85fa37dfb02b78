//! End-to-end tests of the engine: band-key files -> clustering -> result files.

use std::path::{Path, PathBuf};

use super::cluster::{cluster, ClusterOptions, ClusterStats, UnionFind, Verify};
use super::config::tests::test_config;
use super::results::{read_results, ResultRecord};
use super::unit::{SourceStamp, UnitWriter};

/// Documents with known structure: `base` random texts; every third one has a near copy (one word changed)
/// later on, every fifth an exact copy, and a few are empty.
fn corpus(base: usize) -> Vec<String> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let originals: Vec<Vec<String>> =
        (0..base).map(|_| (0..40).map(|_| format!("w{}", next() % 5000)).collect()).collect();
    let mut docs: Vec<String> = originals.iter().map(|w| w.join(" ")).collect();
    for (i, words) in originals.iter().enumerate() {
        if i % 3 == 0 {
            let mut near = words.clone();
            near[20] = "changed".to_string();
            docs.push(near.join(" "));
        }
        if i % 5 == 0 {
            docs.push(words.join(" "));
        }
        if i % 7 == 0 {
            docs.push(String::new());
        }
    }
    docs
}

/// Writes the documents as band-key files of the given sizes (consecutive, in order).
fn write_units(dir: &Path, docs: &[String], sizes: &[usize], exact: bool) -> Vec<PathBuf> {
    let mut config = test_config(64, 8, 8);
    config.shingle_sets = exact;
    let mut paths = Vec::new();
    let mut start = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let path = dir.join(format!("unit-{i}.mhk"));
        let signer = config.clone().build().unwrap();
        let mut w =
            UnitWriter::create(signer, &path, i as u32, &format!("doc-{i}.jsonl"), SourceStamp::default()).unwrap();
        let texts = &docs[start..start + size];
        let lines: Vec<u64> = (1..=size as u64).map(|l| l * 2).collect();
        let ids: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let lengths: Vec<u64> = texts.iter().map(|t| t.chars().count() as u64).collect();
        for (((l, t), d), n) in lines.chunks(7).zip(texts.chunks(7)).zip(ids.chunks(7)).zip(lengths.chunks(7)) {
            w.add(l, t, d, n).unwrap();
        }
        w.finish(size as u64 * 2, 0, 0).unwrap();
        paths.push(path);
        start += size;
    }
    assert_eq!(start, docs.len());
    paths
}

fn run(
    units: &[PathBuf],
    dir: &Path,
    verify: Verify,
    budget: usize,
    threads: usize,
) -> (Vec<ResultRecord>, ClusterStats) {
    let outputs: Vec<PathBuf> = (0..units.len()).map(|i| dir.join(format!("out-{i}.mhr"))).collect();
    let options = ClusterOptions { verify, threshold: 0.7, memory_budget: budget, spill_dir: dir.to_path_buf() };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let stats = pool.install(|| cluster(units, &outputs, None, &options)).unwrap();
    let mut all = Vec::new();
    for (i, out) in outputs.iter().enumerate() {
        let (header, records) = read_results(out).unwrap();
        assert_eq!(header.file_index, i as u32);
        all.extend(records);
    }
    (all, stats)
}

/// The parts of a result that do not depend on how documents were split into files.
fn by_ordinal(records: &[ResultRecord]) -> Vec<(u64, u64, u32)> {
    records.iter().map(|r| (r.ordinal, r.cluster, r.similarity.to_bits())).collect()
}

#[test]
fn clusters_are_found_and_keepers_come_first() {
    let docs = corpus(60);
    let dir = tempfile::tempdir().unwrap();
    let units = write_units(dir.path(), &docs, &[docs.len()], true);
    for verify in [Verify::None, Verify::Signature, Verify::Exact] {
        let (records, stats) = run(&units, dir.path(), verify, 1 << 20, 2);
        // Every exact copy is in its original's cluster, with the original as keeper.
        for (i, _) in (0..60).enumerate().filter(|(i, _)| i % 5 == 0) {
            let copy = docs.iter().enumerate().skip(60).find(|(_, d)| **d == docs[i]).unwrap().0;
            let r = records.iter().find(|r| r.ordinal == copy as u64).expect("exact copy not marked");
            assert_eq!((r.cluster, r.similarity), (i as u64, 1.0), "{verify:?}");
            let keeper = records.iter().find(|r| r.ordinal == i as u64).unwrap();
            assert!(keeper.is_keeper() && keeper.similarity == 1.0);
            assert_eq!((r.keeper_file, r.keeper_line), (0, 2 * (i as u64 + 1)));
        }
        // Empty documents are never duplicates (there are several, all equal).
        for r in &records {
            assert!(!docs[r.ordinal as usize].is_empty());
            assert!(r.cluster <= r.ordinal);
        }
        let near = records.iter().filter(|r| !r.is_keeper() && r.similarity < 1.0).count();
        assert!(near >= 15, "{verify:?}: only {near} of 20 near copies found");
        assert_eq!(stats.duplicates as usize, records.iter().filter(|r| !r.is_keeper()).count());
        assert_eq!(stats.clusters as usize, records.iter().filter(|r| r.is_keeper()).count());
        assert_eq!(stats.documents as usize, docs.len());
        if verify == Verify::Exact {
            for r in records.iter().filter(|r| !r.is_keeper()) {
                assert!(r.similarity >= 0.7, "{r:?}");
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_threads_budget_or_file_split() {
    let docs = corpus(90);
    let n = docs.len();
    for verify in [Verify::None, Verify::Signature, Verify::Exact] {
        let dir = tempfile::tempdir().unwrap();
        let one = write_units(dir.path(), &docs, &[n], true);
        let (want, want_stats) = run(&one, dir.path(), verify, 1 << 20, 1);
        assert_eq!(want_stats.sort.runs, 0);
        assert!(!want.is_empty());
        let (got, _) = run(&one, dir.path(), verify, 1 << 20, 3);
        assert_eq!(got, want);
        let (got, stats) = run(&one, dir.path(), verify, 1024, 2);
        assert!(stats.sort.runs > 10 && stats.sort.merge_passes > 0, "{:?}", stats.sort);
        assert_eq!(got, want);
        let dir = tempfile::tempdir().unwrap();
        let split = write_units(dir.path(), &docs, &[10, 0, n - 50, 40], true);
        let (got, stats) = run(&split, dir.path(), verify, 2048, 2);
        assert_eq!(by_ordinal(&got), by_ordinal(&want), "{verify:?}");
        assert_eq!((stats.clusters, stats.duplicates), (want_stats.clusters, want_stats.duplicates));
        let spilled: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
        assert!(spilled.iter().all(|e| !e.file_name().to_string_lossy().starts_with('.')), "spill left behind");
    }
}

#[test]
fn bad_inputs_are_rejected() {
    let docs = corpus(10);
    let dir = tempfile::tempdir().unwrap();
    let units = write_units(dir.path(), &docs, &[5, docs.len() - 5], false);
    let options =
        |verify| ClusterOptions { verify, threshold: 0.7, memory_budget: 1 << 16, spill_dir: dir.path().into() };
    let out = |n: usize| (0..n).map(|i| dir.path().join(format!("o{i}"))).collect::<Vec<_>>();
    let swapped = vec![units[1].clone(), units[0].clone()];
    let err = cluster(&swapped, &out(2), None, &options(Verify::None)).unwrap_err().to_string();
    assert!(err.contains("position 0"), "{err}");
    let err = cluster(&units, &out(1), None, &options(Verify::None)).unwrap_err().to_string();
    assert!(err.contains("outputs"), "{err}");
    let err = cluster(&units, &out(2), None, &options(Verify::Exact)).unwrap_err().to_string();
    assert!(err.contains("shingle sets"), "{err}");
    let err = cluster(&units, &out(2), Some(1), &options(Verify::None)).unwrap_err().to_string();
    assert!(err.contains("other MinHash parameters"), "{err}");
    let mut bytes = std::fs::read(&units[1]).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0xFF;
    std::fs::write(&units[1], bytes).unwrap();
    let err = cluster(&units, &out(2), None, &options(Verify::None)).unwrap_err().to_string();
    assert!(err.contains("checksum") && err.contains("unit-1.mhk"), "{err}");
    assert!(ClusterOptions::from_json(r#"{"verify": "none", "threshold": 0, "memory_budget": 1, "spill_dir": "x"}"#)
        .is_err());
}

#[test]
fn union_find_roots_are_minima() {
    let mut uf = UnionFind::new(10);
    uf.union(7, 9);
    uf.union(9, 3);
    uf.union(5, 6);
    uf.union(6, 9);
    assert_eq!([3, 5, 6, 7, 9].map(|x| uf.find(x)), [3; 5]);
    assert_eq!(uf.find(4), 4);
    assert!(!uf.union(7, 5));
}

#[test]
fn temporaries_follow_the_one_naming_rule() {
    let prefix = |name: &str| format!(".{name}.tmp-{}-{}-", crate::tempname::host_tag(), std::process::id());
    for (tag, name) in [("tmp", "x.mhk"), ("sigs", "x.mhk.sigs"), ("keys", "x.mhk.keys")] {
        let temp = super::unit::temp_path(Path::new("/data/keys/x.mhk"), tag);
        assert_eq!(temp.parent(), Some(Path::new("/data/keys")));
        let file = temp.file_name().unwrap().to_string_lossy().into_owned();
        let nonce = file.strip_prefix(&prefix(name)).unwrap_or_else(|| panic!("{file}"));
        assert!(nonce.len() == 8 && nonce.chars().all(|c| c.is_ascii_hexdigit()), "{file}");
    }
}
