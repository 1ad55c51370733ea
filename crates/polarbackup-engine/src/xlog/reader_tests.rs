//! The reader against WAL laid out as PostgreSQL writes it (see `testwal`): every boundary
//! case of records and pages, and each way the WAL can end.

use super::testwal::{main_data, TestWal, MAGIC, SYSTEM_ID};
use super::{MemoryWal, Step, WalEnd, WalReader, RM_XACT_ID};
use polarbackup_model::Lsn;

/// Small pages and segments, so that boundaries come often.
const PAGE: u64 = 512;
const SEG: u64 = 8192;

fn read_all(wal: MemoryWal, from: u64) -> (Vec<super::Record>, WalEnd) {
    let mut reader = WalReader::open(wal, Lsn(from)).unwrap();
    let mut out = Vec::new();
    loop {
        match reader.next_record().unwrap() {
            Step::Record(r) => out.push(r),
            Step::End(end) => return (out, end),
        }
    }
}

/// Records of every size from a few bytes to several pages, across several segments.
fn varied(first_segment: u64) -> TestWal {
    let mut w = TestWal::new(SEG, PAGE, first_segment);
    let mut i = 0u32;
    while w.end() < (first_segment + 8) * SEG {
        let len = match i % 7 {
            0 => (i as usize * 13) % 40,
            1 => 200 + (i as usize % 300),
            2 => 1500 + (i as usize * 31) % 700,
            _ => (i as usize * 37) % 120,
        };
        let data: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
        w.append(RM_XACT_ID, 0, 1000 + i, &main_data(&data));
        i += 1;
    }
    w
}

#[test]
fn reads_back_every_record_across_pages_and_segments() {
    let w = varied(2);
    assert!(w.split_headers > 3, "headers split: {}", w.split_headers);
    assert!(
        w.long_records > 3,
        "records over 2+ pages: {}",
        w.long_records
    );
    let (records, end) = read_all(w.memory(), 2 * SEG);
    assert_eq!(records.len(), w.records.len());
    for (r, written) in records.iter().zip(&w.records) {
        assert_eq!(r.lsn, Lsn(written.lsn));
        assert_eq!(r.bytes, written.bytes, "record at {}", r.lsn);
    }
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev, pair[0].lsn);
        // The next record starts where the previous one said, or after a page header there.
        let gap = pair[1].lsn.0 - pair[0].next.0;
        assert!(
            gap == 0 || (pair[0].next.0 % PAGE == 0 && gap <= 40),
            "{gap}"
        );
    }
    assert_eq!(
        end,
        WalEnd::Missing {
            at: Lsn((w.end() + 7) & !7)
        }
    );
}

#[test]
fn starting_in_a_later_segment_skips_the_continued_record() {
    let w = varied(0);
    for seg in 1..8 {
        let from = seg * SEG;
        let (records, _) = read_all(w.memory(), from);
        let expected: Vec<u64> = w
            .records
            .iter()
            .map(|r| r.lsn)
            .filter(|&l| l >= from)
            .collect();
        let got: Vec<u64> = records.iter().map(|r| r.lsn.0).collect();
        assert_eq!(got, expected, "from segment {seg}");
    }
}

#[test]
fn a_record_continued_over_a_whole_page_into_the_next_segment_is_skipped() {
    let mut w = TestWal::new(SEG, PAGE, 0);
    // Fill to near the end of segment 0, then a record four pages long.
    while w.end() < SEG - 300 {
        w.append(RM_XACT_ID, 0, 1, &main_data(&[7; 100]));
    }
    let big = w.append(RM_XACT_ID, 0, 2, &main_data(&[9; 4 * PAGE as usize]));
    let after = w.append(RM_XACT_ID, 0, 3, &main_data(b"after"));
    assert!(big < SEG && after > SEG + PAGE, "{big} {after}");
    let (records, _) = read_all(w.memory(), SEG);
    assert_eq!(records[0].lsn, Lsn(after));
    assert_eq!(records[0].main_data(), b"after");
}

#[test]
fn a_switch_record_moves_on_to_the_next_segment() {
    let mut w = TestWal::new(SEG, PAGE, 0);
    w.append(RM_XACT_ID, 0, 1, &main_data(b"one"));
    let switch = w.switch();
    let two = w.append(RM_XACT_ID, 0, 2, &main_data(b"two"));
    assert_eq!(two, SEG + 40, "after the next segment's long header");
    let (records, _) = read_all(w.memory(), 0);
    let lsns: Vec<u64> = records.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, vec![40, switch, two]);
    assert_eq!(records[1].next, Lsn(SEG));
}

#[test]
fn an_overwritten_contrecord_is_skipped_like_postgresql_does() {
    let mut w = TestWal::new(SEG, PAGE, 0);
    let one = w.append(RM_XACT_ID, 0, 1, &main_data(b"one"));
    w.torn(&main_data(&[5; 900]));
    let two = w.append(RM_XACT_ID, 0, 2, &main_data(b"two"));
    let (records, _) = read_all(w.memory(), 0);
    let lsns: Vec<u64> = records.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, vec![one, two]);
    assert_eq!(
        records[1].prev,
        Lsn(one),
        "linked to the last complete record"
    );
}

fn invalid_reason(end: &WalEnd) -> &str {
    match end {
        WalEnd::Invalid { reason, .. } => reason,
        WalEnd::Missing { at } => panic!("expected an invalid record, got missing at {at}"),
    }
}

#[test]
fn zeros_after_the_last_record_end_the_wal() {
    let mut w = TestWal::new(SEG, PAGE, 0);
    w.append(RM_XACT_ID, 0, 1, &main_data(b"one"));
    let last = w.append(RM_XACT_ID, 0, 2, &main_data(b"two"));
    let mut padded = w.bytes.clone();
    padded.resize(SEG as usize, 0);
    let mut wal = MemoryWal::new();
    wal.insert(Lsn(0), padded);
    let (records, end) = read_all(wal, 0);
    assert_eq!(records.len(), 2);
    let next = (last + w.records[1].bytes.len() as u64 + 7) & !7;
    assert_eq!(
        end,
        WalEnd::Invalid {
            at: Lsn(next),
            reason: "invalid record length: expected at least 24, got 0".into()
        }
    );
}

#[test]
fn a_record_cut_short_ends_the_wal_as_missing() {
    let mut w = TestWal::new(SEG, PAGE, 0);
    w.append(RM_XACT_ID, 0, 1, &main_data(b"one"));
    let big = w.append(RM_XACT_ID, 0, 2, &main_data(&[1; 1200]));
    for cut in [big + 2, big + 30, big + 700, w.end() - 1] {
        let mut wal = MemoryWal::new();
        wal.insert(Lsn(0), w.bytes[..cut as usize].to_vec());
        let (records, end) = read_all(wal, 0);
        assert_eq!(records.len(), 1, "cut at {cut}");
        assert!(
            matches!(end, WalEnd::Missing { .. }),
            "cut at {cut}: {end:?}"
        );
    }
    // A segment missing in the middle.
    let w = varied(0);
    let mut wal = MemoryWal::new();
    for (i, chunk) in w.bytes.chunks(SEG as usize).enumerate() {
        if i != 2 {
            wal.insert(Lsn(i as u64 * SEG), chunk.to_vec());
        }
    }
    let (records, end) = read_all(wal, 0);
    assert!(records.iter().all(|r| r.lsn.0 < 2 * SEG));
    assert!(
        matches!(end, WalEnd::Missing { at } if at.0 >= 2 * SEG - PAGE && at.0 <= 2 * SEG),
        "{end:?}"
    );
}

#[test]
fn damage_ends_the_wal_where_postgresql_would_stop() {
    let w = varied(0);
    let victim = &w.records[40];
    let cases: Vec<(usize, u8, &str)> = vec![
        // A flipped bit in the data: the checksum.
        ((victim.lsn + 30) as usize, 0x10, "checksum"),
        // The prev-link.
        ((victim.lsn + 8) as usize, 0x08, "prev-link"),
        // A page's address, as in a recycled segment.
        ((PAGE * 9 + 9) as usize, 0x01, "pageaddr"),
        // A page's magic number.
        ((PAGE * 9) as usize, 0x01, "magic"),
        // The flags of a page: an unknown bit.
        ((PAGE * 9 + 2) as usize, 0x40, "info bits"),
    ];
    for (at, bit, what) in cases {
        let mut bytes = w.bytes.clone();
        bytes[at] ^= bit;
        let mut wal = MemoryWal::new();
        wal.insert(Lsn(0), bytes);
        let (records, end) = read_all(wal, 0);
        let reason = invalid_reason(&end);
        assert!(reason.contains(what), "{what}: {reason}");
        assert!(records.len() < w.records.len(), "{what}");
        assert!(
            records
                .iter()
                .zip(&w.records)
                .all(|(r, o)| r.bytes == o.bytes),
            "{what}: everything before the damage reads"
        );
    }
}

#[test]
fn a_segment_of_another_system_ends_the_wal() {
    let w = varied(0);
    let mut bytes = w.bytes.clone();
    // Segment 1's long header carries another system identifier.
    let at = SEG as usize + 24;
    bytes[at..at + 8].copy_from_slice(&(SYSTEM_ID + 1).to_le_bytes());
    let mut wal = MemoryWal::new();
    wal.insert(Lsn(0), bytes);
    let (records, end) = read_all(wal, 0);
    assert!(invalid_reason(&end).contains("different database system"));
    assert!(records.iter().all(|r| r.lsn.0 < SEG));
}

#[test]
fn opening_needs_the_long_header_of_a_segment() {
    let w = varied(0);
    let err = WalReader::open(w.memory(), Lsn(PAGE)).err().unwrap();
    assert!(err.to_string().contains("no long page header"), "{err}");
    let err = WalReader::open(MemoryWal::new(), Lsn(0)).err().unwrap();
    assert!(err.to_string().contains("no long page header"), "{err}");
    let reader = WalReader::open(w.memory(), Lsn(SEG)).unwrap();
    let g = reader.geometry();
    assert_eq!(
        (g.seg_size, g.page_size, g.magic, g.system_id),
        (SEG, PAGE, MAGIC, SYSTEM_ID)
    );
}
