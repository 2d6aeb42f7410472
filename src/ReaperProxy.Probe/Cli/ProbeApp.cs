using System.CommandLine;
using ReaperProxy.Probe.Checks;
using ReaperProxy.Probe.Output;
using ReaperProxy.Probe.Protocol;
using Spectre.Console;

namespace ReaperProxy.Probe.Cli;

/// <summary>
/// The program: parse, connect once to report a connection error plainly, run the checks with live
/// progress, print the table (and the JSON), return the exit code. Ctrl-C (the <c>interrupt</c> token)
/// stops the checks, which report what they learned.
/// </summary>
internal static class ProbeApp
{
    public static async Task<int> RunAsync(string[] args, ProbeConsole io, CancellationToken interrupt, TimeProvider? time = null)
    {
        var command = new ProbeCommand();
        command.Root.SetAction((parse, _) => RunChecksAsync(command, parse, io, interrupt, time ?? TimeProvider.System));
        var parse = command.Root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                io.Error.WriteLine("error: " + error.Message);
            }

            io.Error.WriteLine("Run 'reaperproxy-probe --help' for usage.");
            return ExitCodes.ConnectionError;
        }

        // Ctrl-C is the caller's (Program wires it to `interrupt`): no termination handling of System.CommandLine's own.
        return await parse.InvokeAsync(new InvocationConfiguration { Output = io.Out, Error = io.Error, ProcessTerminationTimeout = null }, interrupt);
    }

    private static async Task<int> RunChecksAsync(ProbeCommand command, ParseResult parse, ProbeConsole io, CancellationToken interrupt, TimeProvider time)
    {
        var settings = command.Bind(parse, out var errors);
        if (settings is null)
        {
            foreach (var error in errors)
            {
                io.Error.WriteLine("error: " + error);
            }

            io.Error.WriteLine("Run 'reaperproxy-probe --help' for usage.");
            return ExitCodes.ConnectionError;
        }

        var json = command.Json(parse);
        var humanTerminal = json ? io.ErrorIsTerminal : io.OutIsTerminal;
        var console = CreateConsole(json ? io.Error : io.Out, humanTerminal);
        var startedAt = DateTimeOffset.UtcNow;
        var started = time.GetTimestamp();
        var url = settings.Connect.Uri;

        // One connection first: a wrong URL, a refused port or a bad certificate is one clear error, not seven.
        string statusLine;
        string? subprotocol;
        try
        {
            await using var first = await WebSocketConnector.ConnectAsync(settings.Connect, SocketTuning.Default, interrupt);
            statusLine = first.StatusLine;
            subprotocol = first.Subprotocol;
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(interrupt);
            bound.CancelAfter(TimeSpan.FromSeconds(1));
            try
            {
                // A clean closing handshake, so that the server under audit logs nothing odd about this one.
                await first.Writer.SendAsync(Opcode.Close, FrameWriter.ClosePayload(1000, "reaperproxy-probe: connection check"), bound.Token);
                while (await first.Reader.ReadFrameAsync(bound.Token) is { } frame && frame.Opcode != Opcode.Close)
                {
                    // Whatever the server sent before its reply.
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException)
            {
                // It connected, which is what this was for.
            }
        }
        catch (ConnectFailureException failure)
        {
            io.Error.WriteLine($"error: {failure.Message}");
            if (json)
            {
                JsonReport.WriteConnectFailure(io.Out, url, startedAt, time.GetElapsedTime(started), failure, ExitCodes.ConnectionError);
            }

            return ExitCodes.ConnectionError;
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            io.Error.WriteLine("interrupted before the first connection was open: nothing was measured");
            return ExitCodes.Interrupted;
        }

        var runner = new CheckRunner(settings, time);
        var progress = runner.Prepare();
        console.MarkupLine(Markup.Escape(
            $"{url}: {statusLine}{(subprotocol is null ? string.Empty : $", subprotocol {subprotocol}")}. " +
            $"Running {progress.Count} check{(progress.Count == 1 ? string.Empty : "s")} at once, each on its own connection, for at most {Durations.Format(runner.Bound)}."));
        var live = humanTerminal && console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi;
        var results = await LiveProgress.RunAsync(console, live, runner, progress, interrupt);

        var report = new RunReport
        {
            Url = url,
            StartedAt = startedAt,
            Duration = time.GetElapsedTime(started),
            Interrupted = interrupt.IsCancellationRequested,
            StatusLine = statusLine,
            Subprotocol = subprotocol,
            Results = results,
        };
        var exitCode = ExitCodes.For(report);
        ResultTable.Write(console, report, exitCode);
        if (json)
        {
            JsonReport.Write(io.Out, report, exitCode);
        }

        return exitCode;
    }

    private static IAnsiConsole CreateConsole(TextWriter writer, bool terminal)
    {
        // Colors only on a terminal, and never with NO_COLOR set (https://no-color.org; Spectre's detection honours it).
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal && Environment.GetEnvironmentVariable("NO_COLOR") is not { Length: > 0 } ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!terminal)
        {
            // A log or a pipe has no width: wide enough for the table's sentences, or what COLUMNS says.
            console.Profile.Width = int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns >= 40 ? columns : 160;
        }

        return console;
    }
}
