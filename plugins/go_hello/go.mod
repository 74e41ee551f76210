module jobhost.example/go_hello

go 1.19
