// Checks telegraf-snippets/grafana-dashboard.json against Grafana's dashboard schema as the
// Apache-2.0 grafana-foundation-sdk generates it (Grafana itself is AGPL and not used here):
// strict decoding (unknown keys, wrong types and missing required fields fail, panel options by
// panel type) and the SDK's validation. With --rules, the alert provisioning file (as JSON):
// each rule strictly decoded as the SDK's alert rule. Built and run by tests/telegraf-e2e.sh.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	plugins.RegisterDefaultPlugins()
	if len(os.Args) == 3 && os.Args[1] == "--rules" {
		raw, err := os.ReadFile(os.Args[2])
		if err == nil {
			err = checkRules(raw)
		}
		if err != nil {
			fmt.Println("grafana-foundation-sdk, alert rules:", err)
			os.Exit(1)
		}
		return
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		fmt.Println("not JSON:", err)
		os.Exit(1)
	}
	delete(doc, "__inputs") // the export wrapper Grafana's import reads, not the dashboard model
	body, _ := json.Marshal(doc)
	var d dashboard.Dashboard
	// v0.0.22 returns its error list even when it is empty (a typed nil).
	if err := d.UnmarshalJSONStrict(body); err != nil {
		var be cog.BuildErrors
		if !errors.As(err, &be) || len(be) > 0 {
			fmt.Println("grafana-foundation-sdk, strict:", err)
			os.Exit(1)
		}
	}
	if err := d.Validate(); err != nil {
		fmt.Println("grafana-foundation-sdk, validate:", err)
		os.Exit(1)
	}
	fmt.Printf("grafana-foundation-sdk: %d panels valid\n", len(d.Panels))
}
