using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace WasteClassifier.LoadTesting.Reporting;

/// <summary>A self-contained HTML page: the Markdown tables as HTML and three inline SVG charts.</summary>
public static class HtmlReport
{
    public static string Render(LoadReport report)
    {
        var xs = report.Timeline.Select(p => (double)p.Second).ToList();
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Load test ")
            .Append(WebUtility.HtmlEncode(report.Run.Source))
            .Append("</title><style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}")
            .Append("td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>");
        html.Append(TablesAsHtml(MarkdownReport.Render(report)));
        html.Append(SvgChart.Lines("Throughput over time", "seconds", "images / s", xs,
        [
            new("accepted", "#4e79a7", report.Timeline.Select(p => p.Rate(p.Accepted)).ToList()),
            new("completed", "#59a14f", report.Timeline.Select(p => p.Rate(p.Completed)).ToList()),
            new("failed", "#e15759", report.Timeline.Select(p => p.Rate(p.Failed)).ToList()),
        ]));
        html.Append(SvgChart.Lines("End-to-end latency over time", "seconds", "ms", xs,
        [
            new("p50", "#4e79a7", report.Timeline.Select(p => p.EndToEndP50Ms).ToList()),
            new("p95", "#f28e2b", report.Timeline.Select(p => p.EndToEndP95Ms).ToList()),
        ]));
        html.Append(SvgChart.Bars("End-to-end latency histogram", "ms", report.EndToEndHistogram));
        return html.Append("</body></html>\n").ToString();
    }

    /// <summary>Turns the report's Markdown (headings, sentences, pipe tables) into HTML.</summary>
    private static string TablesAsHtml(string markdown)
    {
        var html = new StringBuilder();
        var inTable = false;
        foreach (var line in markdown.Split('\n'))
        {
            var isRow = line.StartsWith('|');
            if (inTable && !isRow) { html.Append("</table>"); inTable = false; }
            if (line.StartsWith("# ", StringComparison.Ordinal)) html.Append("<h1>").Append(WebUtility.HtmlEncode(line[2..])).Append("</h1>");
            else if (isRow && line.StartsWith("|--", StringComparison.Ordinal)) continue;
            else if (isRow)
            {
                var cell = inTable ? "td" : "th";
                if (!inTable) { html.Append("<table>"); inTable = true; }
                html.Append("<tr>");
                foreach (var value in line.Trim('|').Split('|')) html.Append('<').Append(cell).Append('>').Append(Inline(value.Trim())).Append("</").Append(cell).Append('>');
                html.Append("</tr>");
            }
            else if (line.Length > 0) html.Append("<p>").Append(Inline(line)).Append("</p>");
        }
        if (inTable) html.Append("</table>");
        return html.ToString();
    }

    /// <summary>Encoded, with the Markdown's **bold** as bold: the page showed the asterisks.</summary>
    private static string Inline(string text) => Regex.Replace(WebUtility.HtmlEncode(text), @"\*\*(.+?)\*\*", "<strong>$1</strong>");
}
