module github.com/mercato-dev/mercato/gateway

go 1.26
