// Axum peer for benchmarks/peers_run.sh: GET /hello answers
// "Hello, World!" as text/plain (as piston-static --text does), every other
// path is a file under DIR (tower-http's ServeDir). A current-thread tokio
// runtime: the benchmark pins the process to one CPU and compares servers
// per core.
//
//   bench-axum PORT DIR
use axum::{routing::get, Router};
use tower_http::services::ServeDir;

async fn hello() -> &'static str {
    "Hello, World!"
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: bench-axum PORT DIR");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().expect("PORT must be a number");
    let app = Router::new()
        .route("/hello", get(hello))
        .fallback_service(ServeDir::new(&args[2]));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("cannot bind");
    axum::serve(listener, app).await.expect("server failed");
}
