module github.com/mercato-dev/mercato/payment

go 1.26.7

require github.com/mercato-dev/mercato/shared v0.0.0

replace github.com/mercato-dev/mercato/shared => ../shared
