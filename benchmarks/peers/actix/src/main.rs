// Actix-web peer for benchmarks/peers_run.sh: GET /hello answers
// "Hello, World!" as text/plain (as piston-static --text does), every other
// path is a file under DIR (actix-files). One worker: the benchmark pins the
// process to one CPU and compares servers per core.
//
//   bench-actix PORT DIR
use actix_web::{get, App, HttpResponse, HttpServer};

#[get("/hello")]
async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Hello, World!")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: bench-actix PORT DIR");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().expect("PORT must be a number");
    let dir = args[2].clone();
    HttpServer::new(move || {
        App::new()
            .service(hello)
            .service(actix_files::Files::new("/", dir.clone()))
    })
    .workers(1)
    .backlog(4096)
    .max_connections(100_000)
    .keep_alive(std::time::Duration::from_secs(600))
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
