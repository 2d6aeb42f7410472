using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>
/// A process the soak starts (the proxy, the backend), its stdout and stderr written to files; stopped
/// with SIGTERM and a bounded wait, then killed. Only this process is ever signalled, by its own id.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;

    private ChildProcess(Process process, StreamWriter log, string logPath)
    {
        _process = process;
        _log = log;
        LogPath = logPath;
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public string LogPath { get; }

    /// <summary>The dotnet host running this process, to run other .NET assemblies with.</summary>
    public static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : "dotnet";

    /// <summary>Starts <c>dotnet DLL ARGS</c>; its output (both streams) goes to <paramref name="logPath"/>.</summary>
    public static ChildProcess StartDotnet(string dll, IEnumerable<string> args, string logPath)
    {
        var start = new ProcessStartInfo(DotnetHost)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(logPath)!,
        };
        start.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Nothing from the caller's environment may configure the proxy behind the soak's back.
        foreach (var name in start.Environment.Keys.ToList())
        {
            if (name.StartsWith("Reaper__", StringComparison.OrdinalIgnoreCase) ||
                name.StartsWith("ReverseProxy__", StringComparison.OrdinalIgnoreCase) ||
                name.StartsWith("Kestrel__", StringComparison.OrdinalIgnoreCase) ||
                name.EndsWith("URLS", StringComparison.OrdinalIgnoreCase))
            {
                start.Environment.Remove(name);
            }
        }

        var log = new StreamWriter(logPath) { AutoFlush = true };
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ChildProcess(process, log, logPath);
    }

    /// <summary>The last lines of its output, for error messages.</summary>
    public string Tail(int lines = 20)
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no output)";
        }
    }

    /// <summary>SIGTERM, then up to <paramref name="timeout"/> to exit, then a kill. Returns the exit code (-1 when it was killed).</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        if (_process.HasExited)
        {
            return _process.ExitCode;
        }

        _ = NativeMethods.Kill(_process.Id, NativeMethods.SigTerm);
        using var bound = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(bound.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
            return -1;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(10));
        _process.Dispose();
        lock (_log)
        {
            _log.Dispose();
        }
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // Output after the soak stopped listening.
            }
        }
    }

    private static class NativeMethods
    {
        public const int SigTerm = 15;

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int SysKill(int pid, int signal);

        public static int Kill(int pid, int signal) => SysKill(pid, signal);
    }
}
