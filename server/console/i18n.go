package console

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// languages the console speaks, the first being the fallback.
var languages = []language.Tag{language.English, language.SimplifiedChinese}

// catalogs holds the message catalogs of every language.
type catalogs struct {
	bundle  *i18n.Bundle
	matcher language.Matcher
}

func loadCatalogs(fsys fs.FS) (*catalogs, error) {
	b := i18n.NewBundle(languages[0])
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	for _, name := range []string{"locales/en.json", "locales/zh-Hans.json"} {
		if _, err := b.LoadMessageFileFS(fsys, name); err != nil {
			return nil, fmt.Errorf("console: catalog %s: %w", name, err)
		}
	}
	return &catalogs{bundle: b, matcher: language.NewMatcher(languages)}, nil
}

// locale is one request's language: its messages, numbers and dates.
type locale struct {
	Lang    string // BCP 47 tag for <html lang>
	msgs    *i18n.Localizer
	printer *message.Printer
	zone    *time.Location
}

// locale picks the language from the switch's cookie, else from the
// browser's Accept-Language.
func (c *catalogs) locale(cookie, acceptLanguage string, zone *time.Location) *locale {
	tag, _ := language.MatchStrings(c.matcher, cookie, acceptLanguage)
	base, _ := tag.Base()
	chosen := languages[0]
	for _, l := range languages {
		if b, _ := l.Base(); b == base {
			chosen = l
		}
	}
	return &locale{
		Lang:    chosen.String(),
		msgs:    i18n.NewLocalizer(c.bundle, chosen.String()),
		printer: message.NewPrinter(chosen),
		zone:    zone,
	}
}

// T returns the message id in the locale's language, filled with the
// name/value pairs in args. A message missing from the catalogs shows as
// its id (a test keeps the catalogs complete).
func (l *locale) T(id string, args ...any) string {
	var data map[string]any
	if len(args) > 0 {
		data = map[string]any{}
		for i := 0; i+1 < len(args); i += 2 {
			data[fmt.Sprint(args[i])] = args[i+1]
		}
	}
	s, err := l.msgs.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
	if err != nil {
		return id
	}
	return s
}

// Num formats a whole number with the locale's grouping.
func (l *locale) Num(n int) string { return l.printer.Sprintf("%d", n) }

// Money formats an amount in minor units as major units with two places.
func (l *locale) Money(minor int64) string {
	return l.printer.Sprintf("%.2f", float64(minor)/100)
}

// Metres formats a distance in metres, whole.
func (l *locale) Metres(m float64) string { return l.printer.Sprintf("%.0f", math.Round(m)) }

// Pct formats a ratio as a percentage with one decimal; a dash when the
// ratio is undefined.
func (l *locale) Pct(r *float64) string {
	if r == nil {
		return "—"
	}
	return l.printer.Sprintf("%.1f%%", math.Round(*r*1000)/10)
}

// Date formats a YYYY-MM-DD date the locale's way.
func (l *locale) Date(date string) string {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return date
	}
	return d.Format(l.T("format.date"))
}

// Time formats an instant the locale's way, in the console's zone; a
// dash for none.
func (l *locale) Time(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.In(l.zone).Format(l.T("format.datetime"))
}

// Clock formats an instant's time of day in the console's zone.
func (l *locale) Clock(t time.Time) string { return t.In(l.zone).Format(l.T("format.clock")) }

// Duration formats seconds as hours and minutes.
func (l *locale) Duration(secs int64) string {
	return l.T("format.duration", "H", secs/3600, "M", secs%3600/60)
}
