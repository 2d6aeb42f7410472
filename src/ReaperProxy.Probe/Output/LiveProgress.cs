using ReaperProxy.Probe.Checks;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace ReaperProxy.Probe.Output;

/// <summary>
/// Shows the checks while they run: on a terminal, a live line per check (its state, a bar of elapsed
/// against limit); elsewhere (a pipe, a CI log) one plain line per event, so a log shows what happened
/// when.
/// </summary>
internal static class LiveProgress
{
    private static readonly TimeSpan s_refresh = TimeSpan.FromMilliseconds(100);

    public static async Task<IReadOnlyList<CheckResult>> RunAsync(
        IAnsiConsole console, bool live, CheckRunner runner, IReadOnlyList<CheckProgress> progress, CancellationToken interrupt)
    {
        if (!live)
        {
            var gate = new object();
            foreach (var line in progress)
            {
                line.Noted += (p, at, text) =>
                {
                    lock (gate)
                    {
                        console.WriteLine(FormattableString.Invariant($"[{p.Check} +{at.TotalSeconds:0.00}s] {text}"));
                    }
                };
            }

            return await runner.RunAsync(progress, interrupt);
        }

        IReadOnlyList<CheckResult> results = [];
        var width = progress.Max(p => p.Check.Length);
        await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .AutoRefresh(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new ElapsedOfLimitColumn())
            .StartAsync(async context =>
            {
                var tasks = progress.Select(p =>
                {
                    var task = context.AddTask(Describe(p, width), maxValue: Math.Max(p.Limit.TotalSeconds, 0.001));
                    task.Tag = p;
                    return (Progress: p, Task: task);
                }).ToList();
                var run = runner.RunAsync(progress, interrupt);
                while (!run.IsCompleted)
                {
                    Update(tasks, width);
                    await Task.WhenAny(run, Task.Delay(s_refresh, CancellationToken.None));
                }

                results = await run;
                Update(tasks, width);
                context.Refresh();
            });
        return results;
    }

    private static void Update(List<(CheckProgress Progress, ProgressTask Task)> tasks, int width)
    {
        foreach (var (progress, task) in tasks)
        {
            task.Description = Describe(progress, width);
            task.Value = Math.Min(progress.Elapsed.TotalSeconds, task.MaxValue);
            if (progress.Result is not null && !task.IsFinished)
            {
                task.StopTask();
            }
        }
    }

    private static string Describe(CheckProgress progress, int width)
    {
        var name = Markup.Escape(progress.Check.PadRight(width));
        return progress.Result is { } result
            ? $"{name}  {ResultTable.Verdict(result.Verdict)}"
            : $"{name}  [grey]{Markup.Escape(progress.Status)}[/]";
    }

    /// <summary>"2.3 s / 120 s": elapsed since the check's upgrade against its limit.</summary>
    private sealed class ElapsedOfLimitColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            task.Tag is CheckProgress progress
                ? new Text($"{Durations.Format(progress.Elapsed)} / {Durations.Format(progress.Limit)}")
                : Text.Empty;
    }
}
