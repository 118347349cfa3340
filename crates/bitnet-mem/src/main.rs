//! The `bitnet-mem` command.

mod leakcheck;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: bitnet-mem leakcheck [--seeds N] [--first-seed N] [--steps N] [--json FILE]";
    if args.first().map(String::as_str) != Some("leakcheck") {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let mut a = leakcheck::LeakcheckArgs::default();
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| {
            eprintln!("{flag} needs a value\n{usage}");
            std::process::exit(2)
        });
        let num = || {
            value.parse::<u64>().unwrap_or_else(|_| {
                eprintln!("{flag}: not a number: {value}");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--seeds" => a.seeds = num(),
            "--first-seed" => a.first_seed = num(),
            "--steps" => a.steps = num() as usize,
            "--json" => a.json = Some(value.into()),
            _ => {
                eprintln!("unknown option {flag}\n{usage}");
                std::process::exit(2);
            }
        }
    }
    match leakcheck::run(&a) {
        Ok(r) => print!("{r}"),
        Err(e) => {
            eprintln!("leakcheck: {e}");
            std::process::exit(1);
        }
    }
}
