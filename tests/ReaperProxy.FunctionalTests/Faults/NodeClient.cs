using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using ReaperProxy.FunctionalTests.Observability;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// A real WebSocket client process this project did not write: node running Faults/node/client.js with
/// the <c>ws</c> package pinned in Faults/node/package-lock.json. The packages are installed once with
/// <c>npm ci</c> into <c>~/.cache/reaperproxy/faults-node/&lt;lock hash&gt;</c> (as deploy/k8s/check.sh does;
/// the npm registry must be reachable the first time). Needs node and npm, which .ci/run checks for.
/// </summary>
internal sealed class NodeClient : IAsyncDisposable
{
    private static readonly SemaphoreSlim s_install = new(1, 1);
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _all = new();

    private NodeClient(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _lines.Writer.TryComplete();
                return;
            }

            lock (_all)
            {
                _all.Append(e.Data).Append('\n');
            }

            _lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_all)
                {
                    _all.Append("stderr: ").Append(e.Data).Append('\n');
                }
            }
        };
    }

    public int Id => _process.Id;

    /// <summary>Everything it printed so far.</summary>
    public string Output
    {
        get
        {
            lock (_all)
            {
                return _all.ToString();
            }
        }
    }

    /// <summary>Starts <c>node client.js <paramref name="url"/> <paramref name="mode"/></c> (mode idle or download).</summary>
    public static async Task<NodeClient> StartAsync(Uri url, string mode)
    {
        var modules = await InstallAsync();
        var script = Path.Combine(ExternalTool.RepositoryRoot(), "tests", "ReaperProxy.FunctionalTests", "Faults", "node", "client.js");
        var start = new ProcessStartInfo(ExternalTool.Require("node", "nodejs"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(url.ToString());
        start.ArgumentList.Add(mode);
        start.Environment["NODE_PATH"] = Path.Combine(modules, "node_modules");
        var process = new Process { StartInfo = start };
        var client = new NodeClient(process);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return client;
    }

    /// <summary>Waits for the next line starting with <paramref name="prefix"/> (earlier lines are passed over); fails with its output after <paramref name="timeout"/>.</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await foreach (var line in _lines.Reader.ReadAllAsync(cts.Token))
            {
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"node printed no '{prefix}' line within {timeout.TotalSeconds:0.#} s; its output:\n{Output}");
        }

        throw new InvalidOperationException($"node ended without printing a '{prefix}' line; its output:\n{Output}");
    }

    /// <summary>Waits for the process to exit; false if it is still running after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        // A frozen process must be thawed to be killed cleanly and to release its sockets.
        if (!_process.HasExited)
        {
            Infrastructure.Signals.TrySend(_process.Id, Infrastructure.Signals.SigCont);
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            await WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
    }

    private static async Task<string> InstallAsync()
    {
        var source = Path.Combine(ExternalTool.RepositoryRoot(), "tests", "ReaperProxy.FunctionalTests", "Faults", "node");
        var lockFile = Path.Combine(source, "package-lock.json");
        var hash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(lockFile)))[..16];
        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        var modules = Path.Combine(cache, "reaperproxy", "faults-node", hash);
        await s_install.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(modules, ".installed")))
            {
                return modules;
            }

            // Installed beside, then moved into place: another test run on this machine may be doing the same.
            var staging = modules + ".tmp-" + Environment.ProcessId;
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            Directory.CreateDirectory(staging);
            File.Copy(Path.Combine(source, "package.json"), Path.Combine(staging, "package.json"));
            File.Copy(lockFile, Path.Combine(staging, "package-lock.json"));
            var (code, output) = await ExternalTool.RunAsync(
                ExternalTool.Require("npm", "npm"), "ci --no-audit --no-fund --loglevel=error --fetch-retries=1 --fetch-timeout=30000", staging, TimeSpan.FromSeconds(120));
            if (code != 0)
            {
                Directory.Delete(staging, recursive: true);
                throw new InvalidOperationException($"npm ci in {staging} failed ({code}); the npm registry must be reachable the first time:\n{output}");
            }

            await File.WriteAllTextAsync(Path.Combine(staging, ".installed"), string.Empty);
            if (Directory.Exists(modules) && !File.Exists(Path.Combine(modules, ".installed")))
            {
                // An install that was cut off.
                Directory.Delete(modules, recursive: true);
            }

            try
            {
                Directory.Move(staging, modules);
            }
            catch (IOException) when (File.Exists(Path.Combine(modules, ".installed")))
            {
                // Someone else finished first.
                Directory.Delete(staging, recursive: true);
            }

            return modules;
        }
        finally
        {
            s_install.Release();
        }
    }
}
