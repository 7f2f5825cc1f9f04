//! Policies and their knobs: `name` or `name:knob` (`goal:200`,
//! `balanced:16`), the trigger each builds, and the knob ranges of `--sweep`.

use gcmalloc::{GcTrigger, MemoryLimit, MemorySource, Pacing};

/// Every policy, in report order.
pub const POLICIES: [&str; 8] = ["own", "count", "rss", "estimate", "goal", "debt", "balanced", "incremental"];

/// A policy's knob range for `--sweep`, from the least memory to the least
/// collection time, and what the knob is.
pub fn sweep_range(name: &str) -> (&'static [f64], &'static str) {
    match name {
        "count" => (&[500.0, 2_000.0, 8_000.0, 32_000.0, 128_000.0], "young threshold (allocations)"),
        "rss" | "estimate" => (&[5.0, 10.0, 25.0, 50.0, 100.0, 200.0], "gate (% growth)"),
        "goal" => (&[25.0, 50.0, 100.0, 200.0, 400.0, 800.0], "GOGC"),
        // g / s spans orders of magnitude (a collector that traces no
        // payload bytes is fast per byte): so does the tuning.
        "balanced" | "incremental" => (&[1.0, 8.0, 64.0, 512.0, 4_096.0, 32_768.0], "tuning = 1/c (MiB)"),
        "own" | "debt" => (&[25.0, 50.0, 100.0, 200.0, 400.0], "gc-arena sleep_factor (%); dumpster: none"),
        _ => (&[], ""),
    }
}

/// `name[:knob]`, checked.
pub fn parse(policy: &str) -> Result<String, String> {
    let (name, knob) = split(policy);
    if !POLICIES.contains(&name) {
        return Err(format!("unknown policy {name} (expected one of {POLICIES:?}, optionally :knob)"));
    }
    if let Some(knob) = knob {
        knob.parse::<f64>().ok().filter(|k| *k > 0.0).ok_or_else(|| format!("bad knob in {policy}"))?;
    }
    Ok(policy.to_string())
}

/// The policy's name and its knob, if given.
pub fn split(policy: &str) -> (&str, Option<&str>) {
    match policy.split_once(':') {
        Some((name, knob)) => (name, Some(knob)),
        None => (policy, None),
    }
}

/// The knob's value, or `default`.
pub fn knob(policy: &str, default: f64) -> f64 {
    split(policy).1.and_then(|k| k.parse().ok()).unwrap_or(default)
}

/// `policy` with each knob of its sweep range taken `n` times evenly
/// (`n = 0`: the whole range); a policy without a range or with a knob
/// already stays as it is.
pub fn sweep(policy: &str, n: usize) -> Vec<String> {
    let (range, _) = sweep_range(policy);
    if range.is_empty() || split(policy).1.is_some() {
        return vec![policy.to_string()];
    }
    let n = if n == 0 { range.len() } else { n.min(range.len()) };
    let pick = |i: usize| if n == 1 { range.len() / 2 } else { i * (range.len() - 1) / (n - 1) };
    (0..n).map(|i| format!("{policy}:{}", range[pick(i)])).collect()
}

/// The trigger a policy uses (`own`, `debt`: none, the collector decides),
/// with a soft memory limit of `limit_mib` if given.
pub fn trigger(policy: &str, limit_mib: Option<usize>) -> Option<GcTrigger> {
    let mut builder = GcTrigger::builder();
    if let Some(mib) = limit_mib {
        builder = builder.memory_limit(MemoryLimit::Bytes(mib << 20));
    }
    let (name, _) = split(policy);
    let percent = |default| knob(policy, default) as u32;
    let estimate = crate::gc_heap::estimate_source();
    Some(
        match name {
            "own" | "debt" => return None,
            "count" => builder.threshold(knob(policy, 2_000.0) as usize).source(MemorySource::None),
            "rss" => builder.source(MemorySource::Rss).pacing(Pacing::Gate { percent: percent(10.0) }),
            "estimate" => builder.source(estimate).pacing(Pacing::Gate { percent: percent(10.0) }),
            "goal" => builder.source(estimate).pacing(Pacing::Goal { gogc: percent(100.0), min_heap: 4 << 20 }),
            "balanced" | "incremental" => {
                let tuning = (knob(policy, 64.0) * (1 << 20) as f64) as usize;
                let pacing = Pacing::Balanced { tuning, min_extra: 1 << 20 };
                // The allocation count gates nothing here: memory decides.
                builder.source(estimate).pacing(pacing).threshold(100).cap_multiple(usize::MAX)
            }
            other => unreachable!("policy {other} was validated by the parser"),
        }
        .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_spread_over_the_range() {
        assert_eq!(sweep("goal", 3), ["goal:25", "goal:100", "goal:800"]);
        assert_eq!(sweep("goal", 0).len(), 6);
        assert_eq!(sweep("goal:50", 3), ["goal:50"]);
        assert_eq!(knob("balanced:16", 64.0), 16.0);
        assert!(parse("balanced:x").is_err() && parse("nope").is_err() && parse("goal:200").is_ok());
    }
}
