using System.Diagnostics;
using System.Runtime.InteropServices;
using ReaperProxy.FunctionalTests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Infrastructure;

/// <summary>A child process with its output captured, every wait bounded, and signals (Linux).</summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly OutputLines _stdout = new();
    private readonly OutputLines _stderr = new();

    private ChildProcess(string file, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => _stdout.Add(e.Data);
        _process.ErrorDataReceived += (_, e) => _stderr.Add(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The built probe beside the tests (the project reference copies it here).</summary>
    public static string ProbeDll => Path.Combine(AppContext.BaseDirectory, "reaperproxy-probe.dll");

    public string Stdout => _stdout.ToString();

    public string Stderr => _stderr.ToString();

    public int ExitCode => _process.ExitCode;

    /// <summary><c>dotnet</c> (the one running the tests).</summary>
    public static string Dotnet =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    public static ChildProcess Start(string file, params string[] args) => new(file, args);

    /// <summary>Runs to the end; kills it and fails after <paramref name="timeout"/>.</summary>
    public static async Task<ChildProcess> RunAsync(TimeSpan timeout, string file, params string[] args)
    {
        var process = new ChildProcess(file, args);
        await process.WaitForExitAsync(timeout);
        return process;
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"{_process.StartInfo.FileName} {string.Join(' ', _process.StartInfo.ArgumentList)} did not exit within {timeout}:\n{this}");
        }
    }

    /// <summary>Waits until stdout has a line containing <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!Stdout.Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed > timeout || _process.HasExited)
            {
                throw new TimeoutException($"no '{text}' in the output within {timeout}:\n{this}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>SIGINT, as Ctrl-C in a terminal sends.</summary>
    public void Interrupt()
    {
        if (kill(_process.Id, 2) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, SIGINT) failed");
        }
    }

    public override string ToString() => $"--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";

    public ValueTask DisposeAsync()
    {
        Kill();
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }



    [DllImport("libc", SetLastError = true)]
#pragma warning disable SA1300, IDE1006 // libc's name
    private static extern int kill(int pid, int signal);
#pragma warning restore SA1300, IDE1006
}
