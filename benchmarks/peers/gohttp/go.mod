module piston.bench/gohttp

go 1.21
