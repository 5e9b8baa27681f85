//! A desk-shaped workload: price ticks, order events and news, and the subscriptions a desk
//! of apps would hold on them.

/// SplitMix64: a fixed sequence per seed, so two runs measure the same workload.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Skewed towards small indexes, like symbol popularity.
    pub(crate) fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * u) * n as f64) as usize % n.max(1)
    }
}

const VENUES: [&str; 8] = ["xnas", "xnys", "arcx", "bats", "xlon", "xpar", "xetr", "xtks"];
const REGIONS: [&str; 4] = ["us", "eu", "apac", "latam"];
const STATUSES: [&str; 4] = ["new", "partial", "filled", "cancelled"];
pub(crate) const SYMBOLS: usize = 2000;
const DESKS: usize = 20;
const ACCOUNTS: usize = 50;

fn symbol(i: usize) -> String {
    format!("s{i:04}")
}

/// The next message topic: 70% prices, 15% orders, 15% news.
pub(crate) fn topic(rng: &mut Rng) -> String {
    let roll = rng.below(100);
    if roll < 70 {
        format!("prices.{}.{}", VENUES[rng.below(VENUES.len())], symbol(rng.skewed(SYMBOLS)))
    } else if roll < 85 {
        format!("orders.d{}.a{}.{}", rng.below(DESKS), rng.below(ACCOUNTS), STATUSES[rng.below(STATUSES.len())])
    } else {
        format!("{}.news.{}", REGIONS[rng.below(REGIONS.len())], symbol(rng.skewed(SYMBOLS)))
    }
}

/// A subscription pattern: with probability `wildcard_ratio` one of the wildcard shapes apps
/// use (`prices.<venue>.*`, `prices.*.<symbol>`, `orders.<desk>.#`, `*.news.*`, `#.filled`,
/// `*.news.<symbol>`), else an exact topic.
pub(crate) fn pattern(rng: &mut Rng, wildcard_ratio: f64) -> (String, bool) {
    if rng.unit() < wildcard_ratio {
        let p = match rng.below(6) {
            0 => format!("prices.{}.*", VENUES[rng.below(VENUES.len())]),
            1 => format!("prices.*.{}", symbol(rng.skewed(SYMBOLS))),
            2 => format!("orders.d{}.#", rng.below(DESKS)),
            3 => format!("*.news.{}", symbol(rng.skewed(SYMBOLS))),
            4 => format!("orders.#.{}", STATUSES[rng.below(STATUSES.len())]),
            _ => format!("{}.news.*", REGIONS[rng.below(REGIONS.len())]),
        };
        (p, true)
    } else {
        (topic(rng), false)
    }
}
