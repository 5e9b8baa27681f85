//! Criterion benches of the router: cached and uncached matches against the naive scan.
#![allow(missing_docs, clippy::unwrap_used, reason = "a benchmark: bad input is a bug in it")]

use broker::router::Router;
use broker::{Pattern, Topic};
use criterion::{Criterion, criterion_group, criterion_main};

fn patterns(n: usize) -> Vec<Pattern> {
    (0..n)
        .map(|i| {
            let s = match i % 8 {
                0 => format!("orders.{}.#", i % 97),
                1 => format!("*.news.s{}", i % 1000),
                _ => format!("prices.v{}.s{}", i % 16, i),
            };
            Pattern::parse(&s).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for n in [500usize, 5000] {
        let pats = patterns(n);
        let mut router = Router::new(65_536);
        for (i, p) in pats.iter().enumerate() {
            router.insert(p, i as u32);
        }
        let topic = Topic::parse(&format!("prices.v3.s{}", n / 2 + 3)).unwrap();
        let mut out = Vec::new();
        c.bench_function(&format!("match_cached_{n}"), |b| b.iter(|| router.matches(&topic).len()));
        c.bench_function(&format!("match_uncached_{n}"), |b| {
            b.iter(|| {
                router.matches_uncached(&topic, &mut out);
                out.len()
            });
        });
        c.bench_function(&format!("match_linear_{n}"), |b| {
            b.iter(|| pats.iter().filter(|p| p.matches(&topic)).count());
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
