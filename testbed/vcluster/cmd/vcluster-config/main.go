// Command vcluster-config reads a vcluster chart's values (YAML, as the chart
// writes them into Secret vc-config-<name>) on stdin and prints on stdout, as
// JSON, those values over the defaults of the upstream chart of the vcluster
// version this module pins (the values.yaml embedded in
// github.com/loft-sh/vcluster/config). Maps are merged key by key, anything
// else replaces the default, and null removes it, as Helm merges a chart's
// values.
//
// The test bed's launcher uses it because the project's test chart
// (tests/charts/vcluster) sets only the keys the plugin reads, while the real
// chart renders every default into that Secret: vcluster reads the file
// strictly and takes a missing key as false or empty.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	vclusterconfig "github.com/loft-sh/vcluster/config"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "vcluster-config: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var defaults map[string]any
	if err := yaml.Unmarshal([]byte(vclusterconfig.Values), &defaults); err != nil {
		return fmt.Errorf("the upstream default values: %w", err)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("the chart's values: %w", err)
	}
	merged := merge(defaults, values)
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(merged)
}

// merge returns over merged onto base: maps key by key, other values replace,
// null deletes.
func merge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if v == nil {
			delete(out, k)
			continue
		}
		bm, okb := out[k].(map[string]any)
		om, oko := v.(map[string]any)
		if okb && oko {
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}
