using System.Globalization;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>What Linux says about a process: resident memory, open descriptors, threads (/proc/PID).</summary>
internal sealed record ProcessStats(double RssMiB, int OpenFiles, int Threads)
{
    public static ProcessStats Read(int pid)
    {
        long rssKb = 0;
        var threads = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rssKb = long.Parse(line.AsSpan(6).Trim().ToString().Split(' ')[0], CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
            {
                threads = int.Parse(line.AsSpan(8).Trim(), CultureInfo.InvariantCulture);
            }
        }

        return new ProcessStats(Math.Round(rssKb / 1024.0, 1), Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length, threads);
    }

    public override string ToString() => $"RSS {RssMiB:F1} MiB, {OpenFiles} open files, {Threads} threads";
}

/// <summary>A Prometheus text exposition, summed by series name and label values.</summary>
internal sealed class PrometheusText
{
    private readonly List<(string Name, string Labels, double Value)> _samples = [];

    private PrometheusText()
    {
    }

    public static async Task<PrometheusText> ScrapeAsync(HttpClient client, Uri metrics, CancellationToken cancellationToken)
    {
        var text = await client.GetStringAsync(metrics, cancellationToken);
        var result = new PrometheusText();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var space = line.LastIndexOf(' ');
            var series = line[..space];
            var brace = series.IndexOf('{', StringComparison.Ordinal);
            var name = brace < 0 ? series : series[..brace];
            var labels = brace < 0 ? "" : series[(brace + 1)..^1];
            if (double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                result._samples.Add((name, labels, value));
            }
        }

        return result;
    }

    /// <summary>The sum of every series of <paramref name="name"/> whose labels include each of <paramref name="labels"/> (<c>result="rejected"</c>).</summary>
    public double Sum(string name, params string[] labels) =>
        _samples.Where(s => s.Name == name && labels.All(l => s.Labels.Contains(l, StringComparison.Ordinal))).Sum(s => s.Value);

    /// <summary>Every series of <paramref name="name"/> with its labels, for the report.</summary>
    public SortedDictionary<string, double> Series(string name)
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (n, labels, value) in _samples)
        {
            if (n == name)
            {
                var shown = string.Join(',', labels.Split(',').Where(l => !l.StartsWith("otel_scope", StringComparison.Ordinal)));
                result[shown] = result.GetValueOrDefault(shown) + value;
            }
        }

        return result;
    }
}
