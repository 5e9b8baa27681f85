//! Bench stamps: numbers a bench page puts in what it sends (`"benchStamp": 42` in a bus
//! message's data or an FDC3 context), which an app host started for a bench
//! (`TESSERA_BENCH_STAMPS`) notes with its own clock the moment the page's post reaches it.
//! A page's own clock (`performance.now()`) is coarsened to a millisecond; the hosts' is the
//! machine's monotonic clock, shared by every process, so two hosts' notes of the same exchange
//! give page-to-page times in nanoseconds.
//!
//! [`stamps`] finds them in a post's text without parsing it as JSON: the post may be a batch,
//! the stamp may sit in a payload carried as an escaped string, and a page that is not a bench
//! page never writes the field.

/// The field a bench page writes its stamp in.
pub const FIELD: &str = "benchStamp";

/// Most digits a stamp may have (a `u64` has at most 20; more is not a stamp).
const MAX_DIGITS: usize = 19;

/// Every stamp in `text`, in order: each `benchStamp` followed by optional quotes (plain or
/// escaped), a colon and an unsigned decimal integer. Anything else after the name (a string,
/// a negative number, a fraction, more than 19 digits) is not a stamp and is skipped.
pub fn stamps(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.match_indices(FIELD).filter_map(move |(at, _)| stamp_after(&text[at + FIELD.len()..]))
}

/// The stamp at the start of `rest` (what follows the field's name), if it holds one.
fn stamp_after(rest: &str) -> Option<u64> {
    let rest = rest.trim_start_matches(['\\', '"']).trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > MAX_DIGITS {
        return None;
    }
    // A fraction or an exponent makes it some other number.
    if matches!(rest.as_bytes().get(digits), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests;
