//! Decode throughput, memory manager vs plain `Vec`, alternating in one process so that
//! load from other programs hits both alike: `cargo run --release -p bitnet-tensor
//! --example decode_bench -- [ROUNDS] [TOKENS] [THREADS]`. Prints the median tokens/s of
//! each and their ratio.

use bitnet_memory::{MemoryConfig, MemoryManager};
use bitnet_tensor::model::seeded_prompt;
use bitnet_tensor::{Exec, Model, ModelConfig, Provider};

fn run(p: Provider<'_>, cfg: &ModelConfig, tokens: usize, threads: usize) -> f64 {
    let prompt = seeded_prompt(42, 4, cfg.vocab);
    let exec = Exec::new(threads).expect("threads");
    let mut m = Model::new(cfg, p, exec, 42, prompt.len() + tokens).expect("model");
    m.generate(&prompt, tokens, |_| {})
        .expect("generate")
        .steps_per_second()
}

fn median(mut v: Vec<f64>) -> f64 {
    bitnet_memory::stats::median(&mut v).expect("at least one round")
}

fn main() {
    let arg = |i: usize, d: usize| match std::env::args().nth(i) {
        None => d,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("error: `{s}`: not a positive number\nusage: decode_bench [ROUNDS] [TOKENS] [THREADS]");
                std::process::exit(2);
            }
        },
    };
    let (rounds, tokens, threads) = (arg(1, 7), arg(2, 64), arg(3, 2));
    let cfg = ModelConfig::small();
    let (mut mm_tps, mut vec_tps) = (vec![], vec![]);
    for _ in 0..rounds {
        let mm = MemoryManager::new(MemoryConfig::default()).expect("manager");
        mm_tps.push(run(Provider::Manager(&mm), &cfg, tokens, threads));
        drop(mm);
        vec_tps.push(run(Provider::Vec, &cfg, tokens, threads));
    }
    let (m, v) = (median(mm_tps.clone()), median(vec_tps.clone()));
    println!("manager tokens/s {mm_tps:.1?}");
    println!("Vec     tokens/s {vec_tps:.1?}");
    println!(
        "median: manager {m:.1}, Vec {v:.1}, manager / Vec {:.2}x ({rounds} rounds of {tokens} tokens, {threads} threads)",
        m / v
    );
}
