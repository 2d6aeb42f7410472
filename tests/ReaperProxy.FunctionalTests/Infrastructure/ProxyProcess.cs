using System.Diagnostics;
using System.Reflection;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>How a <see cref="ProxyProcess"/> ended.</summary>
/// <param name="ExitCode">The exit code (meaningless when <paramref name="TimedOut"/>).</param>
/// <param name="StandardOutput">Everything written to stdout.</param>
/// <param name="StandardError">Everything written to stderr.</param>
/// <param name="Elapsed">From start to exit.</param>
/// <param name="TimedOut">The process had to be killed because it did not exit in time.</param>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError, TimeSpan Elapsed, bool TimedOut)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"exit code {ExitCode}{(TimedOut ? " (killed: timed out)" : string.Empty)} after {Elapsed.TotalSeconds:0.0} s" +
        $"{Environment.NewLine}--- stdout ---{Environment.NewLine}{StandardOutput}--- stderr ---{Environment.NewLine}{StandardError}";
}

/// <summary>
/// The built <c>ReaperProxy.dll</c> run as a real child process (<c>dotnet ReaperProxy.dll ...</c>), with
/// stdout and stderr captured and every wait bounded. <see cref="RunAsync"/> is for invocations that end
/// on their own (usage errors, <c>--check-config</c>, bad configurations); <see cref="StartAsync"/> starts a
/// proxy on port 0 and waits until it reports its addresses.
/// </summary>
public sealed class ProxyProcess : IAsyncDisposable
{
    /// <summary>How long a process that should end on its own may take.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    // ReaperProgram prints this once both listeners are bound.
    private const string RunningBanner = "ReaperProxy is running.";

    private static readonly Lazy<string> s_dllPath = new(FindDll);
    private readonly Process _process;
    private readonly OutputLines _stdout = new();
    private readonly OutputLines _stderr = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly TaskCompletionSource<string> _banner = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ProxyProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(DotnetPath())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(DllPath);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Only what the test passes may configure the child.
        foreach (var name in start.Environment.Keys.ToList())
        {
            if (name.StartsWith("Reaper__", StringComparison.OrdinalIgnoreCase) ||
                name.StartsWith("ReverseProxy__", StringComparison.OrdinalIgnoreCase) ||
                name.StartsWith("Kestrel__", StringComparison.OrdinalIgnoreCase) ||
                name.EndsWith("URLS", StringComparison.OrdinalIgnoreCase) ||
                name.EndsWith("_PORTS", StringComparison.OrdinalIgnoreCase))
            {
                start.Environment.Remove(name);
            }
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _banner.TrySetException(new InvalidOperationException("stdout closed before ReaperProxy reported that it runs"));
                return;
            }

            _stdout.Add(e.Data);
            if (e.Data.Contains(RunningBanner, StringComparison.Ordinal))
            {
                _banner.TrySetResult(e.Data);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _stderr.Add(e.Data);
            }
        };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>
    /// The ReaperProxy.dll to run: the copy the project reference places beside the test assembly (same
    /// build configuration as the tests), else the proxy project's own output.
    /// </summary>
    public static string DllPath => s_dllPath.Value;

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The public base address (after <see cref="StartAsync"/>).</summary>
    public Uri PublicUri { get; private set; } = null!;

    /// <summary>Every public base address, in the order ReaperProxy reports them (Kestrel's: endpoints by name).</summary>
    public IReadOnlyList<Uri> PublicUris { get; private set; } = [];

    /// <summary>The admin base address (after <see cref="StartAsync"/>).</summary>
    public Uri AdminUri { get; private set; } = null!;

    /// <summary>stdout so far.</summary>
    public string StandardOutput => _stdout.ToString();

    /// <summary>stderr so far.</summary>
    public string StandardError => _stderr.ToString();

    /// <summary>Runs ReaperProxy with <paramref name="args"/> until it exits; kills it after <paramref name="timeout"/>.</summary>
    public static async Task<ProcessResult> RunAsync(IEnumerable<string> args, TimeSpan? timeout = null)
    {
        await using var process = new ProxyProcess(args);
        return await process.WaitForExitAsync(timeout ?? DefaultTimeout);
    }

    /// <summary>
    /// Starts ReaperProxy on <paramref name="configFile"/> with public and admin listeners on 127.0.0.1 port 0
    /// and waits until it reports its addresses; fails with its output if it exits or hangs instead.
    /// <paramref name="environment"/> adds to (or overrides) the environment the child inherits.
    /// </summary>
    public static async Task<ProxyProcess> StartAsync(
        string configFile, IEnumerable<string>? extraArgs = null, TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var process = new ProxyProcess(
            ["--config", configFile, "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0", .. extraArgs ?? []], environment);
        try
        {
            var banner = await process._banner.Task.WaitAsync(timeout ?? DefaultTimeout);

            // "ReaperProxy is running. Public: http://127.0.0.1:1234  Admin: http://127.0.0.1:5678 (/healthz ...)"
            var publicPart = Between(banner, "Public: ", "  Admin: ");
            var adminPart = Between(banner, "  Admin: ", " (");
            process.PublicUris = [.. publicPart.Split(", ").Select(u => new Uri(u.TrimEnd('/') + "/"))];
            process.PublicUri = process.PublicUris[0];
            process.AdminUri = new Uri(adminPart.Split(", ")[0].TrimEnd('/') + "/");
            return process;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or FormatException or ArgumentOutOfRangeException)
        {
            var result = await process.KillAsync();
            await process.DisposeAsync();
            throw new InvalidOperationException($"ReaperProxy did not start ({ex.Message}): {result}", ex);
        }
    }

    /// <summary>Waits for the process to exit on its own; kills it after <paramref name="timeout"/>.</summary>
    public async Task<ProcessResult> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            // Also waits until stdout and stderr are drained.
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            return await KillAsync();
        }

        return Result(timedOut: false);
    }

    /// <summary>Sends SIGTERM and returns at once (Linux; a second one tells a draining proxy to hurry).</summary>
    public void SendSigterm()
    {
        if (!_process.HasExited && !Signals.TrySend(_process.Id, Signals.SigTerm))
        {
            throw new InvalidOperationException($"kill({_process.Id}, SIGTERM) failed");
        }
    }

    /// <summary>
    /// Asks the process to stop as Ctrl-C/SIGTERM would (a graceful shutdown) and waits for it to exit.
    /// On Windows, where there is no SIGTERM to send, it is killed.
    /// </summary>
    public Task<ProcessResult> StopAsync(TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
        {
            if (OperatingSystem.IsWindows() || !Signals.TrySend(_process.Id, Signals.SigTerm))
            {
                return KillAsync();
            }
        }

        return WaitForExitAsync(timeout ?? DefaultTimeout);
    }

    /// <summary>Kills the process (and anything it started) and waits for it.</summary>
    public async Task<ProcessResult> KillAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            // Output pipes held open by something else; report what there is.
        }

        return Result(timedOut: true);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await KillAsync();
        }

        _process.Dispose();
    }

    private ProcessResult Result(bool timedOut) =>
        new(_process.HasExited ? _process.ExitCode : -1, StandardOutput, StandardError, _clock.Elapsed, timedOut);



    private static string Between(string text, string start, string end)
    {
        var from = text.IndexOf(start, StringComparison.Ordinal) + start.Length;
        var to = text.IndexOf(end, from, StringComparison.Ordinal);
        return text[from..to];
    }

    /// <summary>The dotnet host that runs the tests (for other .NET child processes too).</summary>
    internal static string DotnetPath()
    {
        // Set by the .NET SDK for the processes it runs (dotnet test included).
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        return Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }

    private static string FindDll()
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "ReaperProxy.dll");
        if (File.Exists(beside) && File.Exists(Path.ChangeExtension(beside, ".runtimeconfig.json")))
        {
            return beside;
        }

        var configuration = typeof(ProxyProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var built = Path.GetFullPath(Path.Combine(
            AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src", "ReaperProxy", "bin", configuration, "net10.0", "ReaperProxy.dll"));
        if (File.Exists(built))
        {
            return built;
        }

        throw new FileNotFoundException($"ReaperProxy.dll was found neither beside the tests ({beside}) nor at {built}; build the solution first.");
    }
}
