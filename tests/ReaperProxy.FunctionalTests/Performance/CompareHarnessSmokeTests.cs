using System.Globalization;
using ReaperProxy.FunctionalTests.Observability;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Performance;

/// <summary>
/// The comparison harness (tools/load/compare.sh, issue 11) still runs end to end: real nginx and HAProxy
/// beside ReaperProxy Off and Enforce and the backend directly, every part in its smallest form. Only the
/// harness is checked, never the figures (a smoke run's numbers mean nothing). Alone, after the parallel
/// tests: it loads both cores for about a minute and would slow the timing-sensitive tests beside it.
/// </summary>
[Collection(PerformanceSmokeCollection.Name)]
public sealed class CompareHarnessSmokeTests(ITestOutputHelper output)
{
    private static readonly string[] s_subjects =
        ["direct (no proxy)", "nginx", "HAProxy", "ReaperProxy Off (plain YARP)", "ReaperProxy Enforce (15s/10s)"];

    // One size in the smoke, so one throughput row; the others as in a full run.
    private static readonly string[] s_targets =
    [
        "Enforce ≥ 0.95× Off throughput, 64 B",
        "Enforce p99 ≤ 1.1× Off",
        "Idle memory: Enforce ≤ Off + 2 KiB",
        "Heartbeat ≤ 10 µs per ping",
        "Heartbeat < 2 % of one core",
        "Stretch: Enforce ≥ nginx on 64 B messages per proxy CPU-µs",
        "Stretch: Enforce ≤ nginx on idle memory",
    ];

    [Fact]
    public async Task Compare_smoke_runs_every_subject_and_marks_every_target()
    {
        // Missing peers fail the test rather than skip it: a harness nobody runs rots unnoticed.
        ExternalTool.Require("nginx", "nginx-light");
        ExternalTool.Require("haproxy", "haproxy");
        var outDir = Directory.CreateTempSubdirectory("reaper-compare-smoke-");
        try
        {
            // Its own ports (27100..27135), apart from a full run's default 26000 that someone may be running.
            var (exitCode, text) = await ExternalTool.RunAsync(
                "bash", $"tools/load/compare.sh --smoke --port-base 27100 --out {outDir.FullName}",
                ExternalTool.RepositoryRoot(), TimeSpan.FromMinutes(5));
            output.WriteLine(text);
            Assert.True(exitCode == 0, $"compare.sh --smoke exited {exitCode}:\n{text}");

            var reports = outDir.GetFiles("compare-*.md");
            Assert.True(reports.Length == 1, $"expected one Markdown report in {outDir.FullName}, found {reports.Length}");
            Assert.Single(outDir.GetFiles("compare-*.jsonl"));
            var markdown = File.ReadAllText(reports[0].FullName);

            var throughput = Table(markdown, "### Closed-loop throughput");
            var header = throughput[0];
            foreach (var subject in s_subjects)
            {
                var column = Array.FindIndex(header, h => h.StartsWith(subject, StringComparison.Ordinal));
                Assert.True(column >= 0, $"no throughput column for '{subject}': {string.Join(" | ", header)}");
                foreach (var row in throughput.Skip(1))
                {
                    Assert.True(Rate(row[column]) > 0, $"'{subject}' has no rate in the throughput row '{string.Join(" | ", row)}'");
                }
            }

            var targets = Table(markdown, "### Targets");
            foreach (var target in s_targets)
            {
                Assert.True(targets.Skip(1).Any(row => row[0].StartsWith(target, StringComparison.Ordinal)), $"no target row starting '{target}':\n{markdown}");
            }

            foreach (var row in targets.Skip(1))
            {
                Assert.True(row[^1] is "met" or "short", $"target without a met/short mark: '{string.Join(" | ", row)}'");
            }
        }
        finally
        {
            outDir.Delete(recursive: true);
        }
    }

    // The header row then the data rows of the first Markdown table after the heading that starts with HEADING.
    private static List<string[]> Table(string markdown, string heading)
    {
        var lines = markdown.Split('\n');
        var start = Array.FindIndex(lines, l => l.StartsWith(heading, StringComparison.Ordinal));
        Assert.True(start >= 0, $"no '{heading}' section in the report:\n{markdown}");
        var rows = lines.Skip(start + 1).SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|'))
            .Where(l => !l.StartsWith("|---", StringComparison.Ordinal))
            .Select(l => l.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray())
            .ToList();
        Assert.True(rows.Count >= 2, $"the '{heading}' table has no data rows:\n{markdown}");
        return rows;
    }

    // "23.8k (0.54× direct)" -> 23800; "9,870" -> 9870; "—" -> 0.
    private static double Rate(string cell)
    {
        var text = cell.Split(' ')[0].Replace(",", "", StringComparison.Ordinal);
        var scale = text.EndsWith('k') ? 1000 : 1;
        return double.TryParse(text.TrimEnd('k'), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value * scale : 0;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PerformanceSmokeCollection
{
    public const string Name = "performance smoke (not in parallel)";
}
