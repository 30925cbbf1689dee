module github.com/mercato-dev/mercato/user

go 1.26
