//! Percentiles of measured samples.

/// Nearest-rank percentile (`p` in 0..=100) of samples sorted in place.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Less a hair: 99.9% of 1,000 is 999.0000000000001 in floating point, and rank 999.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts and returns (p50, p99).
pub(crate) fn p50_p99(samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    (percentile(samples, 50.0), percentile(samples, 99.0))
}

/// A cost measured both ways in one run: `pass(false)` and `pass(true)` (each giving a
/// throughput) run in turns, `pairs` times each, which goes first alternating, so drift on a
/// noisy machine falls on both.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct OnOff {
    /// Each throughput without, in the order run.
    pub(crate) off: Vec<f64>,
    /// Each throughput with.
    pub(crate) on: Vec<f64>,
    /// The medians' difference, in percent of the median without (positive: it costs).
    pub(crate) cost_percent: f64,
    /// The best passes' difference, in percent of the best without: the figure least moved
    /// by a noisy neighbour, which only ever slows a pass down.
    pub(crate) best_cost_percent: f64,
}

impl OnOff {
    /// `None` for no pairs.
    pub(crate) fn measure(
        pairs: usize,
        mut pass: impl FnMut(bool) -> anyhow::Result<f64>,
    ) -> anyhow::Result<Option<Self>> {
        if pairs == 0 {
            return Ok(None);
        }
        let (mut off, mut on) = (Vec::new(), Vec::new());
        // Which way goes first alternates (off-on, on-off, ...), so a pass that runs slower
        // for coming second in a pair does not count against one side.
        for i in 0..pairs {
            for way in if i % 2 == 0 { [false, true] } else { [true, false] } {
                let figure = pass(way)?;
                if way { on.push(figure) } else { off.push(figure) }
            }
        }
        let (m_off, m_on) = (median(&off), median(&on));
        let (b_off, b_on) = (off.iter().copied().fold(0.0, f64::max), on.iter().copied().fold(0.0, f64::max));
        Ok(Some(Self {
            off,
            on,
            cost_percent: (m_off - m_on) / m_off.max(f64::MIN_POSITIVE) * 100.0,
            best_cost_percent: (b_off - b_on) / b_off.max(f64::MIN_POSITIVE) * 100.0,
        }))
    }
}

impl OnOff {
    /// The line a bench's table shows for it: the cost of `label` (`metrics' cost`), the
    /// throughput named `what`.
    pub(crate) fn line(&self, label: &str, what: &str) -> String {
        format!(
            "  {label:<23} {:.1}% of {what}, {:.1}% of the best (medians of {} passes each way: off {:.0}, on {:.0})",
            self.cost_percent,
            self.best_cost_percent,
            self.on.len(),
            median(&self.off),
            median(&self.on)
        )
    }
}

/// The median of some figures.
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

#[cfg(test)]
mod tests;
