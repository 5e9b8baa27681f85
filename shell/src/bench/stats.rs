//! Percentiles of measured samples.

/// Nearest-rank percentile (`p` in 0..=100) of samples sorted in place.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts and returns (p50, p99).
pub(crate) fn p50_p99(samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    (percentile(samples, 50.0), percentile(samples, 99.0))
}

#[cfg(test)]
mod tests;
