package mercato_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/clients/go/mercato"
)

// A PATCH body tells three things apart for a field the document types as
// nullable: absent keeps it, a value sets it, null clears it (a category's
// parent_id: null makes it a root; a product's compare_price: null ends a
// sale). Every such field of the client's PATCH types must be able to send
// all three: left as it is the field is absent, and SetNull makes it null.
func TestPatchBodiesCanSendNull(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type  any              `yaml:"type"`
					AnyOf []map[string]any `yaml:"anyOf"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	types := map[string]any{
		"ProfilePatch": mercato.ProfilePatch{}, "AddressPatch": mercato.AddressPatch{},
		"CategoryPatch": mercato.CategoryPatch{}, "ProductPatch": mercato.ProductPatch{}, "VariantPatch": mercato.VariantPatch{},
	}
	nullables := 0
	for name, schema := range doc.Components.Schemas {
		if !strings.HasSuffix(name, "Patch") {
			continue
		}
		zero, ok := types[name]
		if !ok {
			t.Errorf("%s: a PATCH body this test does not know", name)
			continue
		}
		for prop, s := range schema.Properties {
			nullable := false
			if list, ok := s.Type.([]any); ok {
				for _, typ := range list {
					nullable = nullable || typ == "null"
				}
			}
			for _, alt := range s.AnyOf {
				nullable = nullable || alt["type"] == "null"
			}
			if !nullable {
				continue
			}
			nullables++
			body := reflect.New(reflect.TypeOf(zero)).Elem()
			field, ok := fieldOf(body, prop)
			if !ok {
				t.Errorf("%s.%s: no field", name, prop)
				continue
			}
			if absent := marshal(t, body.Interface()); strings.Contains(absent, `"`+prop+`"`) {
				t.Errorf("%s.%s: a zero body sends %s", name, prop, absent)
			}
			setNull := field.Addr().MethodByName("SetNull")
			if !setNull.IsValid() {
				t.Errorf("%s.%s: the null that clears it cannot be sent (the field is a %s)", name, prop, field.Type())
				continue
			}
			setNull.Call(nil)
			if got := marshal(t, body.Interface()); !strings.Contains(got, `"`+prop+`":null`) {
				t.Errorf("%s.%s: SetNull sends %s", name, prop, got)
			}
		}
	}
	if nullables == 0 {
		t.Fatal("no nullable field in any PATCH body: the test reads the document wrong")
	}
}

// fieldOf is the field of the struct v whose JSON name is prop.
func fieldOf(v reflect.Value, prop string) (reflect.Value, bool) {
	for i := range v.NumField() {
		if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ","); name == prop {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
