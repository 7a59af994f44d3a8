// Go net/http peer for benchmarks/peers_run.sh: GET /hello answers
// "Hello, World!" as text/plain (as piston-static --text does), every other
// path is a file under DIR (http.FileServer, which uses sendfile). The
// benchmark runs it with GOMAXPROCS=1 pinned to one CPU.
//
//	bench-gohttp PORT DIR
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

var body = []byte("Hello, World!")

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bench-gohttp PORT DIR")
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(body)
	})
	mux.Handle("/", http.FileServer(http.Dir(os.Args[2])))
	srv := &http.Server{Addr: "127.0.0.1:" + os.Args[1], Handler: mux}
	log.Fatal(srv.ListenAndServe())
}
