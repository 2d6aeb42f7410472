using ReaperProxy.Probe.Checks;
using Spectre.Console;

namespace ReaperProxy.Probe.Output;

/// <summary>The table at the end of a run: one row per check, its verdict, its figures, its sentence.</summary>
internal static class ResultTable
{
    public static void Write(IAnsiConsole console, RunReport report, int exitCode)
    {
        var table = new Table().Border(TableBorder.Rounded).Expand();
        table.AddColumn(new TableColumn("[bold]check[/]").NoWrap());
        table.AddColumn(new TableColumn("[bold]verdict[/]").NoWrap());
        table.AddColumn(new TableColumn("[bold]measured[/]"));
        table.AddColumn(new TableColumn("[bold]what it means[/]"));
        foreach (var result in report.Results)
        {
            table.AddRow(
                new Markup(Markup.Escape(result.Check)),
                new Markup(Verdict(result.Verdict)),
                new Markup(Markup.Escape(result.Measured)),
                new Markup(Markup.Escape(result.Summary)));
        }

        console.WriteLine();
        console.Write(table);
        var counts = string.Join(", ", Enum.GetValues<Checks.Verdict>()
            .Where(v => report.Count(v) > 0)
            .Select(v => $"{report.Count(v)} {JsonReport.Name(v)}"));
        console.MarkupLine(Markup.Escape($"{report.Url}: {counts} in {Durations.Format(report.Duration)}{(report.Interrupted ? " (interrupted)" : string.Empty)}; exit code {exitCode} ({ExitMeaning(exitCode)})"));
    }

    /// <summary>The verdict as the table shows it: colored where colors are allowed (NO_COLOR is respected).</summary>
    public static string Verdict(Verdict verdict) => verdict switch
    {
        Checks.Verdict.Pass => "[green]pass[/]",
        Checks.Verdict.Fail => "[red bold]FAIL[/]",
        Checks.Verdict.Inconclusive => "[yellow]inconclusive[/]",
        _ => "[red]error[/]",
    };

    private static string ExitMeaning(int exitCode) => exitCode switch
    {
        ExitCodes.AllPassed => "every check passed",
        ExitCodes.AnyFailed => "at least one check failed",
        ExitCodes.ConnectionError => "a check could not connect",
        ExitCodes.Inconclusive => "no check failed, but some proved nothing",
        ExitCodes.Interrupted => "interrupted",
        _ => "?",
    };
}
