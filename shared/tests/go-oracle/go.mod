module ferry.local/template-oracle

go 1.23
