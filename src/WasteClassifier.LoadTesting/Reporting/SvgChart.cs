using System.Globalization;
using System.Net;
using System.Text;

namespace WasteClassifier.LoadTesting.Reporting;

/// <summary>Minimal inline SVG charts (no scripts, no external files): line charts and a bar histogram.</summary>
public static class SvgChart
{
    // The title's line, then the legend's line (Top - 10), then the plot.
    private const int Width = 760, Height = 270, Left = 60, Right = 20, Top = 44, Bottom = 40;

    public sealed record Series(string Name, string Colour, IReadOnlyList<double?> Values);

    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<double> xs, IReadOnlyList<Series> series)
    {
        var yMax = NiceMax(series.SelectMany(s => s.Values).OfType<double>().DefaultIfEmpty(1).Max());
        var xMax = Math.Max(1, xs.DefaultIfEmpty(1).Max());
        var svg = Open(title, xLabel, yLabel, xMax, yMax);
        foreach (var (s, index) in series.Select((s, i) => (s, i)))
        {
            var points = xs.Zip(s.Values).Where(p => p.Second is not null).Select(p => $"{X(p.First, xMax)},{Y(p.Second!.Value, yMax)}");
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{s.Colour}\" stroke-width=\"2\" points=\"{string.Join(' ', points)}\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + 10 + index * 170}\" y=\"{Top - 10}\" fill=\"{s.Colour}\" font-size=\"12\">■ {WebUtility.HtmlEncode(s.Name)}</text>");
        }
        return svg.Append("</svg>").ToString();
    }

    public static string Bars(string title, string xLabel, IReadOnlyList<HistogramBin> bins)
    {
        var xMax = bins.Count == 0 ? 1 : bins[^1].ToMs;
        var yMax = NiceMax(bins.Select(b => (double)b.Count).DefaultIfEmpty(1).Max());
        var svg = Open(title, xLabel, "images", xMax, yMax);
        foreach (var bin in bins)
        {
            double x0 = X(bin.FromMs, xMax), x1 = X(bin.ToMs, xMax), y = Y(bin.Count, yMax);
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x0 + 1:F1}\" y=\"{y:F1}\" width=\"{Math.Max(1, x1 - x0 - 2):F1}\" height=\"{Height - Bottom - y:F1}\" fill=\"#4e79a7\"><title>{bin.FromMs:F0}–{bin.ToMs:F0} ms: {bin.Count}</title></rect>");
        }
        return svg.Append("</svg>").ToString();
    }

    private static StringBuilder Open(string title, string xLabel, string yLabel, double xMax, double yMax)
    {
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"14\" text-anchor=\"middle\" font-size=\"14\">{WebUtility.HtmlEncode(title)}</text>");
        for (var k = 0; k <= 4; k++)
        {
            double value = yMax * k / 4, y = Y(value, yMax);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - Right}\" y1=\"{y:F1}\" y2=\"{y:F1}\" stroke=\"#ddd\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{y + 4:F1}\" text-anchor=\"end\" font-size=\"11\">{MarkdownReport.F(value)}</text>");
            double xv = xMax * k / 4;
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(xv, xMax):F1}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\" font-size=\"11\">{MarkdownReport.F(xv)}</text>");
        }
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - Right}\" y1=\"{Height - Bottom}\" y2=\"{Height - Bottom}\" stroke=\"#333\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"{Height - 6}\" text-anchor=\"middle\" font-size=\"12\">{WebUtility.HtmlEncode(xLabel)}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{Height / 2}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 {Height / 2})\">{WebUtility.HtmlEncode(yLabel)}</text>");
        return svg;
    }

    private static double X(double value, double max) => Math.Round(Left + (Width - Left - Right) * value / max, 1);

    private static double Y(double value, double max) => Math.Round(Height - Bottom - (Height - Top - Bottom) * value / max, 1);

    /// <summary>Rounds an axis maximum up to 1, 2 or 5 × a power of ten.</summary>
    internal static double NiceMax(double value)
    {
        if (value <= 0) return 1;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        return new[] { 1, 2, 5, 10 }.Select(m => m * magnitude).First(m => m >= value);
    }
}
