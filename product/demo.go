package product

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/money"
)

// demoNamespace makes the demo catalogue's ids stable: the same slug always
// gets the same id, on every machine and every run.
var demoNamespace = uuid.MustParse("5b1e4e0c-6a38-4c39-9a0e-2f1d8c7a4e11")

func demoID(kind, slug string) string {
	return uuid.NewSHA1(demoNamespace, []byte(kind+"/"+slug)).String()
}

// demoProduct is one line of the demo catalogue.
type demoProduct struct {
	category string // slug
	name     string
	price    string
	stock    int
	featured bool
	variants []demoVariant
}

type demoVariant struct {
	suffix string // of the SKU and the name
	price  string
	stock  int
	attrs  map[string]string
}

// DemoCatalogue is the catalogue make run starts with: a few categories with
// sub-categories, fifty products, some with variants, all in stock. Ids are
// derived from slugs, so loading it twice could only ever collide, never
// duplicate.
func DemoCatalogue() ([]Category, []Product) {
	type cat struct{ slug, name, parent string }
	cats := []cat{
		{"electronics", "Electronics", ""},
		{"phones", "Phones", "electronics"},
		{"laptops", "Laptops", "electronics"},
		{"audio", "Audio", "electronics"},
		{"clothing", "Clothing", ""},
		{"t-shirts", "T-shirts", "clothing"},
		{"shoes", "Shoes", "clothing"},
		{"home-kitchen", "Home & Kitchen", ""},
		{"cookware", "Cookware", "home-kitchen"},
		{"furniture", "Furniture", "home-kitchen"},
		{"books", "Books", ""},
		{"sports", "Sports & Outdoors", ""},
	}
	categories := make([]Category, len(cats))
	for i, c := range cats {
		categories[i] = Category{ID: demoID("category", c.slug), Name: c.name, Slug: c.slug,
			Description: c.name + " from the Mercato demo catalogue."}
		if c.parent != "" {
			parent := demoID("category", c.parent)
			categories[i].ParentID = &parent
		}
	}

	sizes := func(price string, stock int) []demoVariant {
		var vs []demoVariant
		for _, s := range []string{"S", "M", "L", "XL"} {
			vs = append(vs, demoVariant{suffix: s, price: price, stock: stock, attrs: map[string]string{"size": s}})
		}
		return vs
	}
	shoeSizes := func(price string) []demoVariant {
		var vs []demoVariant
		for _, s := range []string{"40", "41", "42", "43", "44"} {
			vs = append(vs, demoVariant{suffix: s, price: price, stock: 12, attrs: map[string]string{"eu_size": s}})
		}
		return vs
	}
	storage := func(base string, bigger string) []demoVariant {
		return []demoVariant{
			{suffix: "128GB", price: base, stock: 25, attrs: map[string]string{"storage": "128GB"}},
			{suffix: "256GB", price: bigger, stock: 15, attrs: map[string]string{"storage": "256GB"}},
		}
	}
	items := []demoProduct{
		{"phones", "Aurora X1 Smartphone", "699.00", 0, true, storage("699.00", "799.00")},
		{"phones", "Aurora X1 Mini", "549.00", 0, false, storage("549.00", "629.00")},
		{"phones", "Nimbus 5G Phone", "399.00", 40, false, nil},
		{"phones", "Pocket Basic Phone", "49.99", 120, false, nil},
		{"phones", "Rugged Outdoor Phone", "329.00", 18, false, nil},
		{"laptops", "Featherweight 13 Laptop", "1199.00", 0, true, []demoVariant{
			{"16GB", "1199.00", 10, map[string]string{"memory": "16GB"}},
			{"32GB", "1499.00", 6, map[string]string{"memory": "32GB"}}}},
		{"laptops", "Workhorse 15 Laptop", "999.00", 22, false, nil},
		{"laptops", "Student Chromebook", "279.00", 60, false, nil},
		{"laptops", "Creator Pro 16 Laptop", "2399.00", 5, true, nil},
		{"laptops", "Gaming Beast 17", "1899.00", 8, false, nil},
		{"audio", "Studio Wireless Headphones", "249.00", 35, true, nil},
		{"audio", "Everyday Earbuds", "79.00", 150, false, nil},
		{"audio", "Bookshelf Speakers Pair", "189.00", 20, false, nil},
		{"audio", "Portable Bluetooth Speaker", "59.99", 80, false, nil},
		{"audio", "Vinyl Turntable", "299.00", 9, false, nil},
		{"t-shirts", "Organic Cotton Tee", "19.99", 0, true, sizes("19.99", 30)},
		{"t-shirts", "Graphic Mountain Tee", "24.99", 0, false, sizes("24.99", 20)},
		{"t-shirts", "Merino Running Tee", "49.00", 0, false, sizes("49.00", 12)},
		{"t-shirts", "Classic V-Neck Tee", "17.50", 0, false, sizes("17.50", 25)},
		{"t-shirts", "Long Sleeve Henley", "34.00", 0, false, sizes("34.00", 15)},
		{"shoes", "Trail Runner Shoes", "129.00", 0, true, shoeSizes("129.00")},
		{"shoes", "Canvas Sneakers", "59.00", 0, false, shoeSizes("59.00")},
		{"shoes", "Leather Chelsea Boots", "189.00", 0, false, shoeSizes("189.00")},
		{"shoes", "Road Racing Flats", "149.00", 0, false, shoeSizes("149.00")},
		{"shoes", "Summer Sandals", "39.00", 0, false, shoeSizes("39.00")},
		{"cookware", "Cast Iron Skillet 26cm", "44.95", 45, true, nil},
		{"cookware", "Stainless Steel Saucepan Set", "149.00", 14, false, nil},
		{"cookware", "Non-Stick Frying Pan", "29.99", 70, false, nil},
		{"cookware", "Dutch Oven 5L", "89.00", 16, false, nil},
		{"cookware", "Chef Knife 20cm", "69.00", 33, false, nil},
		{"furniture", "Oak Dining Table", "899.00", 4, false, nil},
		{"furniture", "Ergonomic Office Chair", "349.00", 12, true, nil},
		{"furniture", "Minimalist Bookshelf", "159.00", 10, false, nil},
		{"furniture", "Velvet Armchair", "429.00", 6, false, nil},
		{"furniture", "Standing Desk Frame", "499.00", 7, false, nil},
		{"books", "The Pragmatic Gardener", "24.00", 50, false, nil},
		{"books", "Distributed Systems in Practice", "54.00", 25, true, nil},
		{"books", "A Short History of Markets", "18.99", 40, false, nil},
		{"books", "Cooking for Friends", "32.00", 30, false, nil},
		{"books", "Night Trains of Europe", "21.50", 22, false, nil},
		{"books", "Go Microservices Handbook", "45.00", 35, false, nil},
		{"sports", "Yoga Mat 6mm", "35.00", 55, false, nil},
		{"sports", "Adjustable Dumbbells", "259.00", 10, true, nil},
		{"sports", "Insulated Water Bottle", "24.95", 200, false, nil},
		{"sports", "Two-Person Tent", "219.00", 9, false, nil},
		{"sports", "Trekking Poles Pair", "79.00", 28, false, nil},
		{"sports", "Cycling Helmet", "89.00", 0, false, []demoVariant{
			{"M", "89.00", 14, map[string]string{"size": "M"}},
			{"L", "89.00", 11, map[string]string{"size": "L"}}}},
		{"sports", "Foam Roller", "27.00", 65, false, nil},
		{"sports", "Climbing Chalk Bag", "19.00", 3, false, nil},
		{"sports", "Trail Headlamp", "39.00", 44, false, nil},
	}

	products := make([]Product, len(items))
	for i, it := range items {
		slug := Slugify(it.name)
		sku := fmt.Sprintf("DEMO-%03d", i+1)
		catID := demoID("category", it.category)
		price := mustAmount(it.price)
		cost := price * 55 / 100
		compare := price * 120 / 100
		weight := Weight("0.75")
		p := Product{
			ID: demoID("product", slug), CategoryID: &catID, Name: it.name, Slug: slug,
			Description:      it.name + " — part of the Mercato demo catalogue, made to try the storefront.",
			ShortDescription: it.name + ".",
			SKU:              sku, Price: price, CostPrice: &cost, Currency: Currency,
			StockQuantity: it.stock, MinStockQuantity: 2, Weight: &weight,
			Dimensions: &Dimensions{Length: 30, Width: 20, Height: 10, Unit: "cm"},
			Images:     []string{"https://images.example.com/mercato-demo/" + slug + ".jpg"},
			IsActive:   true, IsFeatured: it.featured,
		}
		if it.featured {
			p.ComparePrice = &compare
		}
		for _, v := range it.variants {
			p.Variants = append(p.Variants, Variant{
				ID: demoID("variant", sku+"-"+v.suffix), ProductID: p.ID, SKU: sku + "-" + v.suffix,
				Name: it.name + " " + v.suffix, Price: mustAmount(v.price), Currency: Currency,
				StockQuantity: v.stock, Attributes: v.attrs, IsActive: true,
			})
		}
		products[i] = p
	}
	return categories, products
}

func mustAmount(s string) money.Amount {
	a, err := money.Parse(s)
	if err != nil {
		panic(fmt.Sprintf("demo catalogue: price %q: %v", s, err))
	}
	return a
}

// demoSeed names the demo catalogue's load in the repository.
const demoSeed = "demo-catalogue-v1"

func (s *service) SeedDemo(ctx context.Context) (bool, error) {
	categories, products := DemoCatalogue()
	return s.repo.SeedCatalogue(ctx, demoSeed, categories, products)
}
