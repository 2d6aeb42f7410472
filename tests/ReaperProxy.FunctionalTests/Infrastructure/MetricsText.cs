using System.Globalization;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>One scrape of a proxy's <c>/metrics</c> (Prometheus text), summed by series name and labels.</summary>
public sealed class MetricsText
{
    private readonly List<(string Name, string Labels, double Value)> _samples = [];

    private MetricsText()
    {
    }

    /// <summary>GETs <c>/metrics</c> from <paramref name="admin"/> (a client whose base address is the admin listener).</summary>
    public static async Task<MetricsText> ScrapeAsync(HttpClient admin)
    {
        var result = new MetricsText();
        foreach (var raw in (await admin.GetStringAsync("/metrics")).Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var space = line.LastIndexOf(' ');
            var brace = line.IndexOf('{', StringComparison.Ordinal);
            var name = brace is < 0 or > 200 || brace > space ? line[..space] : line[..brace];
            var labels = brace < 0 || brace > space ? string.Empty : line[(brace + 1)..line.LastIndexOf('}')];
            if (double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                result._samples.Add((name, labels, value));
            }
        }

        return result;
    }

    /// <summary>The sum of every series of <paramref name="name"/> whose labels include each of <paramref name="labels"/> (e.g. <c>result="rejected"</c>); 0 when there is none.</summary>
    public double Sum(string name, params string[] labels) =>
        _samples.Where(s => s.Name == name && labels.All(l => s.Labels.Contains(l, StringComparison.Ordinal))).Sum(s => s.Value);
}
