//! Runs the benchmark flow's engine work in a loop, for a profiler (callgrind, perf).

use semaphore_engine_bench::{answer, engine, finish, input, start, Recorder};

fn main() {
    let engine = engine();
    let input = input();
    let answers = [answer("a"), answer("b"), answer("c")];
    let runs: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    for _ in 0..runs {
        let mut host = Recorder::default();
        let mut execution = start(&engine, &input, &mut host);
        std::hint::black_box(finish(&mut execution, &mut host, &answers));
    }
}
