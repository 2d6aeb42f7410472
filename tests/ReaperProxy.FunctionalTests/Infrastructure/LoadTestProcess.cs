using System.Diagnostics;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// The load harness (src/ReaperProxy.LoadTest, built beside the tests) run as a real child process:
/// <see cref="RunAsync"/> for a subcommand that ends on its own (churn, soak), <see cref="StartBackendAsync"/>
/// for its backend on 127.0.0.1 port 0. Output is captured; every wait is bounded; the process is killed
/// when disposed.
/// </summary>
public sealed class LoadTestProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly OutputLines _stdout = new();
    private readonly OutputLines _stderr = new();
    private readonly TaskCompletionSource<string> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private LoadTestProcess(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(Dotnet())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ReaperProxy.LoadTest.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => _stdout.Add(e.Data);
        _process.ErrorDataReceived += (_, e) =>
        {
            _stderr.Add(e.Data);
            if (e.Data is { } line && line.StartsWith("backend listening on ", StringComparison.Ordinal))
            {
                _listening.TrySetResult(line);
            }
        };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    /// <summary>stdout so far.</summary>
    public string StandardOutput => _stdout.ToString();

    /// <summary>stderr so far.</summary>
    public string StandardError => _stderr.ToString();

    /// <summary>Runs <c>ReaperProxy.LoadTest ARGS</c> to its end; kills it after <paramref name="timeout"/> (then the exit code is -1).</summary>
    public static async Task<(int ExitCode, string StandardOutput, string StandardError)> RunAsync(IEnumerable<string> args, TimeSpan timeout)
    {
        await using var process = new LoadTestProcess(args);
        using var bound = new CancellationTokenSource(timeout);
        try
        {
            await process._process.WaitForExitAsync(bound.Token);
            return (process._process.ExitCode, process.StandardOutput, process.StandardError);
        }
        catch (OperationCanceledException)
        {
            process._process.Kill(entireProcessTree: true);
            return (-1, process.StandardOutput, process.StandardError + $"\n(killed: still running after {timeout})");
        }
    }

    /// <summary>Starts the harness's backend (<c>/ws</c> echo, <c>/abort</c>, <c>/stats</c>) on 127.0.0.1 port 0; returns it and its base address.</summary>
    public static async Task<(LoadTestProcess Process, Uri BaseUri)> StartBackendAsync()
    {
        var process = new LoadTestProcess(["backend", "--urls", "http://127.0.0.1:0"]);
        try
        {
            // "backend listening on http://127.0.0.1:41234 (WebSocket echo at /ws)"
            var line = await process._listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var url = line["backend listening on ".Length..].Split(' ', ',')[0];
            return (process, new Uri(url.TrimEnd('/') + "/"));
        }
        catch (TimeoutException)
        {
            await process.DisposeAsync();
            throw new InvalidOperationException($"the load harness's backend did not start: {process.StandardError}");
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                // Output pipes held open elsewhere; nothing more to wait for.
            }
        }

        _process.Dispose();
    }

    private static string Dotnet() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";


}
