using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace ReaperProxy.Hosting;

/// <summary>The process entry point: command line, check mode, start-up errors and exit codes.</summary>
public static partial class ReaperProgram
{
    /// <summary>Exit code for a usage error.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code for an invalid configuration or a listener that cannot bind.</summary>
    public const int ConfigError = 1;

    /// <summary>Runs the proxy until it is stopped; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var commandLine = CommandLine.Parse(args, out var usageError);
        if (commandLine is null)
        {
            error.WriteLine($"error: {usageError}");
            error.WriteLine(CommandLine.Usage);
            return UsageError;
        }

        if (commandLine.Help)
        {
            output.WriteLine(CommandLine.Usage);
            return 0;
        }

        if (commandLine.CheckConfigFile is { } checkFile)
        {
            return ReaperHost.Check(checkFile, output, error) ? 0 : ConfigError;
        }

        var host = ReaperHost.Create(commandLine, out var errors);
        if (host is null)
        {
            foreach (var e in errors)
            {
                error.WriteLine("error: " + e);
            }

            error.WriteLine($"ReaperProxy did not start: {errors.Count} configuration problem(s).");
            return ConfigError;
        }

        await using (host)
        {
            try
            {
                await host.StartAsync();
            }
            catch (Exception ex) when (ex is IOException or SocketException or InvalidOperationException or UriFormatException)
            {
                error.WriteLine($"error: cannot listen: {ex.Message}");
                error.WriteLine("ReaperProxy did not start. Check --urls / --admin-urls (is another process using the port?).");
                return ConfigError;
            }

            var publicUrls = string.Join(", ", host.ProxyAddresses);
            var adminUrls = string.Join(", ", host.AdminAddresses);
            if (host.Settings.LogFormat == Configuration.LogFormat.Json)
            {
                // Log pipelines ingest stdout line by line: keep every line JSON.
                LogRunning(host.Proxy.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ReaperProxy"), publicUrls, adminUrls);
            }
            else
            {
                output.WriteLine($"ReaperProxy is running. Public: {publicUrls}  Admin: {adminUrls} (/healthz /readyz /metrics /connections)");
            }

            // The first SIGTERM (or Ctrl-C) starts the drain (through the host's lifetime); a second one
            // tells it to end what is left now.
            var drain = host.Proxy.Services.GetRequiredService<Relay.ConnectionDrain>();
            var signals = 0;
            void OnSignal(PosixSignalContext context)
            {
                if (Interlocked.Increment(ref signals) >= 2)
                {
                    drain.Hurry();
                }
            }

            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            await host.WaitForShutdownAsync();
        }

        return 0;
    }

    [LoggerMessage(EventId = 1003, EventName = "Running", Level = LogLevel.Information,
        Message = "ReaperProxy is running. Public: {PublicUrls}  Admin: {AdminUrls} (/healthz /readyz /metrics /connections)")]
    private static partial void LogRunning(ILogger logger, string publicUrls, string adminUrls);
}
