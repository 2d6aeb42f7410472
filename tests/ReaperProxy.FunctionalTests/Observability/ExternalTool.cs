using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ReaperProxy.FunctionalTests.Observability;

/// <summary>Finds the repository and real external tools (prometheus, promtool, bash) the observability tests use.</summary>
internal static class ExternalTool
{
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ReaperProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("ReaperProxy.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>
    /// The full path of a tool on PATH, or in /usr/sbin and /sbin where Debian installs daemons such as
    /// nginx and haproxy (a non-root PATH lacks them); fails the test with how to install it when missing.
    /// </summary>
    public static string Require(string tool, string debianPackage = "prometheus")
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator);
        foreach (var dir in path.Concat(["/usr/sbin", "/sbin"]))
        {
            var candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"'{tool}' is not on PATH. Install Debian's '{debianPackage}' package (apt-get install {debianPackage}); .ci/run does.");
    }

    public static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Runs a command to completion within <paramref name="timeout"/>; returns exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, string arguments, string workingDirectory, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start " + file);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {arguments} did not finish within {timeout}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
