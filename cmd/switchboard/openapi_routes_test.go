package main

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// apiPrefix is where the gateway mounts every package's API (serve.go, ticketing.go,
// telephony.go, softphone.go, webhooks.go all pass "/api/v2").
const apiPrefix = "/api/v2"

// TestOpenAPI_EveryRegisteredRouteDescribed proves that openapi.yaml describes every operation
// the gateway serves under /api/v2, whichever package registers it, and nothing it does not
// serve. Go's ServeMux cannot list its patterns, so the test walks the registrations in the
// source of every package (the mux.Handle / mux.HandleFunc calls, and the calls of the
// packages' prefixing helpers h("GET /users", …)), mounts the patterns found on a real
// ServeMux, and matches both ways: each registered method+pattern must be an operation of the
// spec, and each operation of the spec must reach a registered pattern. The ".json" forms
// (ticketing.ZendeskPaths) are implied and not listed. A registration the walk cannot read (a
// pattern built at run time) fails the test rather than being skipped. Fast: no database, no
// network.
//
// Before this test the spec lacked 28 operations (calls, call_events, reports, lines, agent
// states, the roster, recordings): it failed on each of them.
func TestOpenAPI_EveryRegisteredRouteDescribed(t *testing.T) {
	routes := registeredAPIRoutes(t, filepath.Join("..", ".."))
	if len(routes) < 80 {
		t.Fatalf("found %d routes under %s, want at least 80: the walk of the registrations is broken", len(routes), apiPrefix)
	}
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	// The spec's operations, in ServeMux's form: "GET /api/v2/users/{}".
	spec := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			spec[method+" "+normalise(apiPrefix+path)] = true
		}
	}
	mux := http.NewServeMux()
	registered := map[string]bool{}
	for _, r := range routes {
		key := r.method + " " + normalise(r.path)
		if !spec[key] {
			t.Errorf("%s %s (registered at %s) is not in ticketing/openapi.yaml", r.method, r.path, r.pos)
		}
		if registered[r.method+" "+r.path] {
			continue // a pattern may be registered in two places (none today); ServeMux would panic
		}
		registered[r.method+" "+r.path] = true
		mux.Handle(r.method+" "+r.path, http.NotFoundHandler())
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			concrete := regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(apiPrefix+path, "x1")
			req := httptest.NewRequest(method, concrete, nil)
			_, pattern := mux.Handler(req)
			got, _, _ := strings.Cut(pattern, " ")
			if pattern == "" || got != method {
				t.Errorf("openapi.yaml has %s %s, but no package registers it (the mux answers %q)", method, path, pattern)
			}
		}
	}
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// normalise makes path parameters' names irrelevant: /webhooks/{webhook_id} is /webhooks/{id}.
func normalise(p string) string {
	return strings.TrimSuffix(paramRE.ReplaceAllString(p, "{}"), "{$}")
}

type route struct {
	method, path, pos string
}

// registeredAPIRoutes walks the non-test Go files of the module at root for the routes
// registered under apiPrefix.
func registeredAPIRoutes(t *testing.T, root string) []route {
	t.Helper()
	var out []route
	pkgs := map[string][]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch name := d.Name(); {
			case path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "bench"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		pkgs[dir] = append(pkgs[dir], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, files := range pkgs {
		// Pass 1: the registrars, h := func(pattern string, …) { … mux.Handle(…prefix+path…) }:
		// their calls h("GET /users", …) register "GET /api/v2/users".
		registrars := map[string]bool{}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				as, ok := n.(*ast.AssignStmt)
				if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
					return true
				}
				fl, ok := as.Rhs[0].(*ast.FuncLit)
				id, ok2 := as.Lhs[0].(*ast.Ident)
				if !ok || !ok2 || !callsMuxHandle(fl.Body) || !firstParamIs(fl.Type, "pattern") {
					return true
				}
				registrars[id.Name] = true
				return true
			})
		}
		// Pass 2: the registrations.
		for _, f := range files {
			var stack []ast.Node
			ast.Inspect(f, func(n ast.Node) bool {
				if n == nil {
					stack = stack[:len(stack)-1]
					return true
				}
				stack = append(stack, n)
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) < 2 {
					return true
				}
				pos := fset.Position(call.Pos()).String()
				switch fn := call.Fun.(type) {
				case *ast.SelectorExpr:
					recv, ok := fn.X.(*ast.Ident)
					if !ok || recv.Name != "mux" || (fn.Sel.Name != "Handle" && fn.Sel.Name != "HandleFunc") {
						return true
					}
					pattern, ok := evalPattern(call.Args[0])
					if !ok {
						if insideRegistrar(stack) {
							return true // the registrar itself: its callers are read in pass 2
						}
						t.Errorf("%s: a route pattern the test cannot read; build it from literals and prefix, or teach this test", pos)
						return true
					}
					method, path, found := strings.Cut(pattern, " ")
					if !found {
						if strings.HasPrefix(pattern, apiPrefix+"/") && pattern != apiPrefix+"/" {
							t.Errorf("%s: %q registers every method under the API; give it a method", pos, pattern)
						}
						return true // the catch-all JSON 404, or not the API
					}
					if strings.HasPrefix(path, apiPrefix+"/") {
						out = append(out, route{method, path, pos})
					}
				case *ast.Ident:
					if !registrars[fn.Name] {
						return true
					}
					lit, ok := call.Args[0].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: %s called with a pattern that is not a literal", pos, fn.Name)
						return true
					}
					s, _ := strconv.Unquote(lit.Value)
					method, path, found := strings.Cut(s, " ")
					if !found {
						t.Errorf("%s: %q has no method", pos, s)
						return true
					}
					out = append(out, route{method, apiPrefix + path, pos})
				}
				return true
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// evalPattern reads a pattern built of string literals and the mount prefix ("GET "+prefix+"/calls").
func evalPattern(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		l, ok := evalPattern(x.X)
		if !ok {
			return "", false
		}
		r, ok := evalPattern(x.Y)
		return l + r, ok
	case *ast.Ident:
		if x.Name == "prefix" {
			return apiPrefix, true
		}
	case *ast.SelectorExpr:
		if x.Sel.Name == "prefix" {
			return apiPrefix, true // a.prefix: where Register mounted the API
		}
	case *ast.ParenExpr:
		return evalPattern(x.X)
	}
	return "", false
}

func callsMuxHandle(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if s, ok := c.Fun.(*ast.SelectorExpr); ok && (s.Sel.Name == "Handle" || s.Sel.Name == "HandleFunc") {
				found = true
			}
		}
		return !found
	})
	return found
}

func firstParamIs(ft *ast.FuncType, name string) bool {
	return ft.Params != nil && len(ft.Params.List) > 0 && len(ft.Params.List[0].Names) > 0 && ft.Params.List[0].Names[0].Name == name
}

// insideRegistrar reports whether the node on top of stack is inside a func literal whose first
// parameter is pattern (a registrar).
func insideRegistrar(stack []ast.Node) bool {
	for i := len(stack) - 1; i >= 0; i-- {
		if fl, ok := stack[i].(*ast.FuncLit); ok && firstParamIs(fl.Type, "pattern") {
			return true
		}
	}
	return false
}

// TestOpenAPI_ACDMatchesSpec drives the ACD's operations of openapi.yaml (x-served-by: ivr:
// GET /queues, GET /agents, PUT /agents/{id}/state), a success and an error each, through the
// ACD's real handlers on a loopback server, and checks every answer against the description.
func TestOpenAPI_ACDMatchesSpec(t *testing.T) {
	acd, err := ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{{Name: "support"}},
		Agents: []ivr.Agent{{ID: 7, Email: "agent7@example.com", Name: "Agent Seven", Queues: []string{"support"}}},
		Authorizer: ivr.AuthorizerFunc(func(r *http.Request) (int64, bool, error) {
			switch r.Header.Get("Authorization") {
			case "Bearer agent7":
				return 7, false, nil
			case "Bearer agent8":
				return 8, false, nil
			}
			return 0, false, errors.New("no credentials")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	mux := http.NewServeMux()
	acd.Register(mux, apiPrefix)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: srv.URL + apiPrefix}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	validated := map[string]map[int]bool{}
	for _, s := range []struct{ token, method, path, body string }{
		{"agent7", "GET", "/queues", ""},
		{"", "GET", "/queues", ""},
		{"agent7", "GET", "/agents", ""},
		{"", "GET", "/agents", ""},
		{"agent7", "PUT", "/agents/7/state", `{"agent":{"state":"available"}}`},
		{"agent7", "PUT", "/agents/7/state", `{"agent":{"state":"lunch"}}`},
		{"agent8", "PUT", "/agents/7/state", `{"agent":{"state":"away"}}`},
	} {
		req, _ := http.NewRequest(s.method, srv.URL+apiPrefix+s.path, strings.NewReader(s.body))
		if s.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in openapi.yaml: %v", s.method, s.path, err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(raw)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", s.method, s.path, res.StatusCode, err, raw)
			continue
		}
		op := route.Operation.OperationID
		if validated[op] == nil {
			validated[op] = map[int]bool{}
		}
		validated[op][res.StatusCode] = true
	}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Extensions["x-served-by"] != "ivr" {
				continue
			}
			ops++
			ok, failed := false, false
			for status := range validated[op.OperationID] {
				ok = ok || status < 300
				failed = failed || status >= 400
			}
			if !ok || !failed {
				t.Errorf("%s %s (%s): validated statuses %v, want a success and an error", method, path, op.OperationID, validated[op.OperationID])
			}
		}
	}
	if ops != 3 {
		t.Errorf("%d operations served by the ACD in openapi.yaml, want 3", ops)
	}
}
