//! The decoder: determinism, the memory pattern of decode steps, leaks, budgets.

use bitnet_memory::{MemoryConfig, MemoryManager};
use bitnet_tensor::demo::{run_demo, DemoOptions, ModelSize, Runs};
use bitnet_tensor::model::seeded_prompt;
use bitnet_tensor::{Error, Exec, Model, ModelConfig, Provider};

/// Small enough for debug builds: 2 layers of width 128, 8 heads over 2 KV heads.
fn tiny() -> ModelConfig {
    ModelConfig {
        name: "tiny".into(),
        hidden: 128,
        ffn: 352,
        layers: 2,
        heads: 8,
        kv_heads: 2,
        vocab: 512,
        max_seq: 64,
        ..ModelConfig::small()
    }
}

fn generate(p: Provider<'_>, cfg: &ModelConfig, seed: u64, threads: usize, n: usize) -> Vec<u32> {
    let mut m = Model::new(cfg, p, Exec::new(threads).unwrap(), seed, 32).unwrap();
    let prompt = seeded_prompt(seed, 3, cfg.vocab);
    m.generate(&prompt, n, |_| {}).unwrap().tokens
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let cfg = tiny();
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let a = generate(Provider::Manager(&mm), &cfg, 7, 1, 12);
    assert_eq!(a.len(), 12);
    assert_eq!(
        a,
        generate(Provider::Manager(&mm), &cfg, 7, 1, 12),
        "same seed"
    );
    assert_eq!(a, generate(Provider::Vec, &cfg, 7, 1, 12), "Vec buffers");
    assert_eq!(
        a,
        generate(Provider::Manager(&mm), &cfg, 7, 2, 12),
        "two threads"
    );
    assert_ne!(
        a,
        generate(Provider::Manager(&mm), &cfg, 8, 1, 12),
        "another seed"
    );
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert!(
        distinct.len() > 1,
        "greedy decoding should not be stuck on one token: {a:?}"
    );
}

#[test]
fn reserved_memory_is_flat_after_the_first_step_and_steps_leak_nothing() {
    for cfg in [
        tiny(),
        ModelConfig {
            layers: 2,
            ..ModelConfig::small()
        },
    ] {
        decode_steps_are_flat(&cfg);
    }
}

fn decode_steps_are_flat(cfg: &ModelConfig) {
    // No background worker: its decay (memory idle 5 s) and strategy selection change
    // reserved bytes on their own clock, which a slow run reaches mid-loop. This test is
    // about what the steps themselves reserve.
    let mut config = MemoryConfig::default();
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    let mut m = Model::new(cfg, Provider::Manager(&mm), Exec::sequential(), 1, 32).unwrap();
    let live_model = mm.metrics().live_bytes();
    let (mut tok, leaks) = m.step(3).unwrap();
    assert!(leaks.unwrap().is_clean());
    let reserved = mm.metrics().reserved_bytes();
    for step in 1..12 {
        let (next, leaks) = m.step(tok).unwrap();
        tok = next;
        let leaks = leaks.expect("a manager-backed step is checked");
        assert!(leaks.is_clean(), "step {step} left {leaks:?}");
        let met = mm.metrics();
        assert_eq!(
            met.reserved_bytes(),
            reserved,
            "reserved grew at step {step}"
        );
        assert_eq!(met.live_bytes(), live_model, "live bytes after step {step}");
    }
    assert_eq!(m.cache().len(), 12);
    drop(m);
    assert_eq!(
        mm.metrics().live_allocations(),
        0,
        "the model leaves nothing live"
    );
    assert_eq!(mm.metrics().live_bytes(), 0);
}

#[test]
fn memory_needs_bound_the_measured_peak_tightly() {
    for cfg in [
        tiny(),
        ModelConfig {
            layers: 1,
            ..ModelConfig::small()
        },
    ] {
        let positions = 20;
        let needs = cfg.memory_needs(positions);
        let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
        let mut m = Model::new(
            &cfg,
            Provider::Manager(&mm),
            Exec::sequential(),
            3,
            positions,
        )
        .unwrap();
        let after_build = mm.metrics().live_bytes();
        assert_eq!(
            after_build,
            needs.weights + needs.kv_cache,
            "{}: persistent bytes",
            cfg.name
        );
        m.generate(&[1], positions, |_| {}).unwrap();
        let peak = mm.metrics().peak_live_bytes();
        assert!(
            peak <= needs.total(),
            "{}: peak {peak} over the estimate {}",
            cfg.name,
            needs.total()
        );
        // The estimate is an upper bound on the temporaries, not a guess: within 2%.
        assert!(
            needs.total() as f64 <= peak as f64 * 1.02,
            "{}: estimate {} far above the peak {peak}",
            cfg.name,
            needs.total()
        );
    }
}

#[test]
fn config_shapes_of_2b4t() {
    let c = ModelConfig::bitnet_2b4t();
    c.validate().unwrap();
    assert_eq!(
        (c.hidden, c.ffn, c.layers, c.heads, c.kv_heads, c.vocab),
        (2560, 6912, 30, 20, 5, 128_256)
    );
    assert_eq!((c.head_dim(), c.kv_dim()), (128, 640));
    // Ternary: 30 layers of 2 * 2560^2 + 2 * 640 * 2560 + 3 * 6912 * 2560 weights, 2 bits each.
    let ternary = 30 * (2 * 2560 * 2560 + 2 * 640 * 2560 + 3 * 6912 * 2560) / 4;
    let f32s = 4 * (128_256 * 2560 + 30 * (3 * 2560 + 6912) + 2560);
    assert_eq!(c.weight_bytes(), ternary + f32s);
    let s = ModelConfig::scaled(0.2).unwrap();
    s.validate().unwrap();
    assert_eq!(
        (s.heads, s.kv_heads, s.head_dim(), s.layers),
        (4, 1, 128, 6)
    );
    assert!(ModelConfig::scaled(0.0).is_err() && ModelConfig::scaled(1.5).is_err());
    let bad = ModelConfig {
        kv_heads: 3,
        ..ModelConfig::small()
    };
    assert!(matches!(bad.validate(), Err(Error::Config(_))));
}

fn quick_opts() -> DemoOptions {
    DemoOptions {
        model: ModelSize::Custom(tiny()),
        tokens: 6,
        prompt_len: 2,
        threads: 2,
        progress: false,
        ..DemoOptions::default()
    }
}

#[test]
fn demo_reports_both_runs() {
    let r = run_demo(&quick_opts()).unwrap();
    let m = r.manager.as_ref().unwrap();
    let v = r.vec.as_ref().unwrap();
    assert_eq!(r.same_tokens(), Some(true));
    assert_eq!(m.stats.tokens.len(), 6);
    assert_eq!(m.stats.steps, 2 + 6 - 1);
    assert_eq!(
        (m.leaks.steps, m.leaks.leaking_steps, m.live_after_drop),
        (7, 0, 0)
    );
    assert!(m.peak_live <= r.needs.total() && m.peak_live >= r.needs.weights);
    assert!(m.peak_reserved >= m.peak_live);
    assert!(m.stats.tokens_per_s > 0.0 && v.tokens_per_s > 0.0);
    assert!(r.speed_ratio().unwrap() > 0.0);
    let text = r.to_string();
    for want in [
        "peak live",
        "peak reserved",
        "utilization",
        "fragmentation",
        "tracking overhead",
        "leaks",
        "tokens/s",
        "plain Vec",
        "manager / Vec",
        "identical in both runs",
    ] {
        assert!(text.contains(want), "report lacks {want:?}:\n{text}");
    }
    if cfg!(target_os = "linux") {
        assert!(m.stats.peak_rss.is_some() && v.peak_rss.is_some());
    }
    let only = run_demo(&DemoOptions {
        runs: Runs::VecOnly,
        ..quick_opts()
    })
    .unwrap();
    assert!(only.manager.is_none());
    assert_eq!(only.vec.unwrap().tokens, m.stats.tokens);
}

#[test]
fn a_budget_below_the_model_fails_up_front_and_says_what_it_needs() {
    let opts = quick_opts();
    let needs = tiny().memory_needs(opts.prompt_len + opts.tokens);
    let err = run_demo(&DemoOptions {
        budget: Some(needs.total() - 1),
        ..opts.clone()
    })
    .unwrap_err();
    match &err {
        Error::BudgetTooSmall {
            needed,
            source: None,
            ..
        } => assert_eq!(*needed, needs.total()),
        e => panic!("expected BudgetTooSmall, got {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&needs.total().to_string()) && msg.contains("needs"),
        "{msg}"
    );
}

#[test]
fn a_budget_hit_while_running_is_mapped_to_the_same_clear_error() {
    // Enough for the live bytes, not for the pool's 4 MiB first chunk.
    let opts = quick_opts();
    let needs = tiny().memory_needs(opts.prompt_len + opts.tokens);
    assert!(needs.total() < 2 << 20);
    let err = run_demo(&DemoOptions {
        budget: Some(needs.total()),
        ..opts.clone()
    })
    .unwrap_err();
    match &err {
        Error::BudgetTooSmall {
            needed,
            source: Some(_),
            recommended,
            ..
        } => {
            assert_eq!(*needed, needs.total());
            assert!(*recommended > needs.total());
        }
        e => panic!("expected BudgetTooSmall with a source, got {e}"),
    }
    // The recommended budget is enough.
    let ok = run_demo(&DemoOptions {
        budget: Some(needs.recommended_budget()),
        runs: Runs::ManagerOnly,
        ..opts
    });
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn demo_with_history_snapshots_the_manager_and_its_exact_peak() {
    let off = run_demo(&DemoOptions {
        runs: Runs::ManagerOnly,
        ..quick_opts()
    })
    .unwrap();
    assert!(
        off.manager.unwrap().snapshot.is_none(),
        "no history asked for"
    );
    let r = run_demo(&DemoOptions {
        runs: Runs::ManagerOnly,
        history: Some(100_000),
        ..quick_opts()
    })
    .unwrap();
    let m = r.manager.unwrap();
    let snap = m.snapshot.expect("a snapshot");
    snap.check().unwrap();
    assert!(!snap.history.is_empty() && snap.history_dropped == 0);
    let peak = snap.history.iter().map(|e| e.live_bytes).max().unwrap();
    assert_eq!(peak as usize, m.peak_live, "the history saw the exact peak");
    // Taken with the model loaded: the weights are live blocks of the pools.
    let live: u64 = snap.devices[0]
        .pools
        .iter()
        .flat_map(|p| &p.chunks)
        .flat_map(|c| &c.blocks)
        .filter(|b| b.live)
        .map(|b| b.size)
        .sum();
    assert!(live as usize >= r.needs.weights);
}
