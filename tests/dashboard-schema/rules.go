package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/alerting"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
)

// checkRules decodes every rule of a provisioning file (as JSON) into the SDK's alert rule,
// with the group-level fields the provisioning format keeps outside the rule.
func checkRules(raw []byte) error {
	var file struct {
		Groups []struct {
			Name   string            `json:"name"`
			Folder string            `json:"folder"`
			OrgID  int64             `json:"orgId"`
			Rules  []json.RawMessage `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return err
	}
	n := 0
	var all []error
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			var m map[string]any
			if err := json.Unmarshal(r, &m); err != nil {
				return err
			}
			m["folderUID"], m["orgID"], m["ruleGroup"] = g.Folder, g.OrgID, g.Name
			body, _ := json.Marshal(m)
			var rule alerting.Rule
			if err := rule.UnmarshalJSONStrict(body); err != nil {
				var be cog.BuildErrors
				if !errors.As(err, &be) || len(be) > 0 {
					all = append(all, fmt.Errorf("rule %v: %w", m["uid"], err))
					continue
				}
			}
			if err := rule.Validate(); err != nil {
				all = append(all, fmt.Errorf("rule %v: %w", m["uid"], err))
			}
			n++
		}
	}
	if len(all) > 0 {
		return errors.Join(all...)
	}
	fmt.Printf("grafana-foundation-sdk: %d alert rules valid\n", n)
	return nil
}
