// Command validate decodes every object of a rendered Helm chart strictly
// into the real Kubernetes API types, so that a misspelled field, a wrong
// nesting or a value of the wrong type fails before a cluster sees it.
//
//	helm template ... | validate
//
// Each YAML document is looked up by apiVersion and kind in client-go's
// scheme (plus the Prometheus Operator's monitoring/v1 types) and decoded
// with sigs.k8s.io/yaml's UnmarshalStrict: unknown fields and duplicate keys
// are errors. A kind the scheme does not know is an error too: nothing
// passes unchecked. Prints one line per object; exits 1 on any problem.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := monitoringv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// splitDocuments splits a YAML stream on "---" lines, dropping empty documents
// and comment-only ones (helm template writes "# Source:" before each).
func splitDocuments(stream []byte) []string {
	var docs []string
	var current strings.Builder
	flush := func() {
		text := current.String()
		current.Reset()
		for _, line := range strings.Split(text, "\n") {
			trimmed := strings.TrimSpace(line)
			if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
				docs = append(docs, text)
				return
			}
		}
	}
	scanner := bufio.NewScanner(bytes.NewReader(stream))
	scanner.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") {
			flush()
			continue
		}
		current.WriteString(line)
		current.WriteString("\n")
	}
	flush()
	return docs
}

func validate(s *runtime.Scheme, doc string) (string, error) {
	var h header
	if err := yaml.Unmarshal([]byte(doc), &h); err != nil {
		return "", fmt.Errorf("not a YAML object: %w", err)
	}
	if h.APIVersion == "" || h.Kind == "" {
		return "", fmt.Errorf("apiVersion and kind are required")
	}
	label := fmt.Sprintf("%s %s/%s", h.APIVersion, h.Kind, h.Metadata.Name)
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return label, err
	}
	obj, err := s.New(gv.WithKind(h.Kind))
	if err != nil {
		return label, fmt.Errorf("unknown kind: %w", err)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return label, err
	}
	return label, nil
}

func main() {
	s, err := newScheme()
	if err != nil {
		fmt.Fprintf(os.Stderr, "validate: building the scheme: %v\n", err)
		os.Exit(2)
	}
	stream, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "validate: reading stdin: %v\n", err)
		os.Exit(2)
	}
	docs := splitDocuments(stream)
	if len(docs) == 0 {
		fmt.Fprintln(os.Stderr, "validate: no objects on stdin")
		os.Exit(1)
	}
	failed := 0
	for i, doc := range docs {
		label, err := validate(s, doc)
		if err != nil {
			failed++
			fmt.Printf("FAIL document %d %s: %v\n", i+1, label, err)
			continue
		}
		fmt.Printf("ok %s\n", label)
	}
	fmt.Printf("%d objects, %d invalid\n", len(docs), failed)
	if failed > 0 {
		os.Exit(1)
	}
}
