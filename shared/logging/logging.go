// Package logging writes log/slog records as JSON lines in the fields Cloud
// Logging understands (severity, message, trace, labels), and carries the
// request's logger in the context.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// Cloud Logging's special JSON fields.
const (
	FieldTrace  = "logging.googleapis.com/trace"
	FieldSpan   = "logging.googleapis.com/spanId"
	FieldLabels = "logging.googleapis.com/labels"
	FieldSource = "logging.googleapis.com/sourceLocation"
)

// New returns a logger writing JSON to w at level, labelled with fn (the
// function name) in Cloud Logging's labels field.
func New(w io.Writer, level slog.Leveler, fn string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       level,
		AddSource:   true,
		ReplaceAttr: replace,
	})
	l := slog.New(h)
	if fn != "" {
		l = l.With(slog.Group(FieldLabels, slog.String("function", fn)))
	}
	return l
}

func replace(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		a.Key = "severity"
		lvl, _ := a.Value.Any().(slog.Level)
		a.Value = slog.StringValue(severity(lvl))
	case slog.SourceKey:
		a.Key = FieldSource
		if src, ok := a.Value.Any().(*slog.Source); ok && src != nil {
			a.Value = slog.GroupValue(
				slog.String("file", src.File),
				slog.Int("line", src.Line),
				slog.String("function", src.Function),
			)
		}
	case slog.TimeKey:
		a.Key = "time"
	}
	return a
}

func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// TraceAttrs returns the trace fields for an X-Cloud-Trace-Context header value
// ("TRACE_ID/SPAN_ID;o=1") or a traceparent header ("00-TRACE-SPAN-01"), or nil
// when neither is present.
func TraceAttrs(project, cloudTrace, traceparent string) []any {
	var trace, span string
	if cloudTrace != "" {
		trace, span, _ = strings.Cut(cloudTrace, "/")
		span, _, _ = strings.Cut(span, ";")
	} else if parts := strings.Split(traceparent, "-"); len(parts) == 4 && len(parts[1]) == 32 {
		trace, span = parts[1], parts[2]
	}
	if trace == "" || project == "" {
		return nil
	}
	attrs := []any{slog.String(FieldTrace, "projects/"+project+"/traces/"+trace)}
	if span != "" {
		attrs = append(attrs, slog.String(FieldSpan, span))
	}
	return attrs
}

type ctxKey struct{}

// WithLogger returns ctx carrying l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the logger in ctx, or slog.Default().
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// Discard is a logger that writes nothing.
var Discard = slog.New(slog.DiscardHandler)

// FromOr returns the logger in ctx, or def when ctx carries none.
func FromOr(ctx context.Context, def *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return def
}
