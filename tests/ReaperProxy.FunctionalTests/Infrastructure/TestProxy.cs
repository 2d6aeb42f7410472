using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ReaperProxy.Configuration;
using ReaperProxy.Hosting;
using Xunit.Abstractions;
using Yarp.ReverseProxy;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>The outcome of a configuration file change.</summary>
public enum ReloadOutcome
{
    /// <summary>The new file was valid and is now the configuration.</summary>
    Applied,

    /// <summary>The new file was invalid; the last good configuration keeps serving.</summary>
    Rejected,
}

/// <summary>Options for <see cref="TestProxy.StartAsync"/>.</summary>
public sealed record TestProxyOptions
{
    /// <summary>
    /// Adds a second public endpoint that speaks only cleartext HTTP/2 (h2c), exposed as
    /// <see cref="TestProxy.H2cUri"/>. Both public endpoints then come from <c>Kestrel:Endpoints</c>
    /// (which makes Kestrel ignore <c>--urls</c>), as an operator would configure it.
    /// </summary>
    public bool H2cEndpoint { get; init; }

    /// <summary>Runs last on the proxy's builder (e.g. to replace the <see cref="TimeProvider"/>).</summary>
    public Action<WebApplicationBuilder>? Configure { get; init; }

    /// <summary>Where the proxy's logs go; they are dropped when null.</summary>
    public ITestOutputHelper? Output { get; init; }
}

/// <summary>
/// ReaperProxy in-process, built by <see cref="ReaperHost.Create"/> exactly as the executable builds it: a
/// temporary config file, public and admin listeners on 127.0.0.1 port 0. The file can be rewritten
/// (<see cref="ReloadAsync(ProxyConfig)"/>) to exercise live reloads without waiting for the poll timer.
/// </summary>
public sealed class TestProxy : IAsyncDisposable
{
    private const string H2cEndpointName = "h2c";
    private readonly DirectoryInfo _dir;

    private TestProxy(ReaperHost host, DirectoryInfo dir, string configFile)
    {
        Host = host;
        _dir = dir;
        ConfigFile = configFile;
    }

    /// <summary>The host under test (its <see cref="ReaperHost.Proxy"/> services are the proxy's).</summary>
    public ReaperHost Host { get; }

    /// <summary>The configuration file the proxy watches.</summary>
    public string ConfigFile { get; }

    /// <summary>The public HTTP/1.1 base address.</summary>
    public Uri PublicUri { get; private set; } = null!;

    /// <summary>The public h2c base address, when <see cref="TestProxyOptions.H2cEndpoint"/> was set.</summary>
    public Uri? H2cUri { get; private set; }

    /// <summary>The admin listener's base address.</summary>
    public Uri AdminUri { get; private set; } = null!;

    /// <summary>Reload outcomes are raised here.</summary>
    public ConfigReloadReporter Reporter => Host.Proxy.Services.GetRequiredService<ConfigReloadReporter>();

    /// <summary>Writes <paramref name="config"/> to a temporary file and starts ReaperProxy on it.</summary>
    public static async Task<TestProxy> StartAsync(ProxyConfig config, TestProxyOptions? options = null)
    {
        options ??= new TestProxyOptions();
        var dir = Directory.CreateTempSubdirectory("reaper-proxy-test-");
        var file = Path.Combine(dir.FullName, "reaper.json");
        File.WriteAllText(file, config.WithTestDefaults().ToJson());

        ListenOptions? h2cListen = null;
        var commandLine = new CommandLine { ConfigFile = file, Urls = "http://127.0.0.1:0", AdminUrls = "http://127.0.0.1:0" };
        var host = ReaperHost.Create(commandLine, out var errors, builder =>
        {
            builder.Logging.ClearProviders();
            if (options.Output is { } output)
            {
                builder.Logging.AddProvider(new XunitLoggerProvider(output, "proxy"));
            }

            if (options.H2cEndpoint)
            {
                builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Kestrel:Endpoints:http1:Url"] = "http://127.0.0.1:0",
                    ["Kestrel:Endpoints:http1:Protocols"] = "Http1",
                    [$"Kestrel:Endpoints:{H2cEndpointName}:Url"] = "http://127.0.0.1:0",
                    [$"Kestrel:Endpoints:{H2cEndpointName}:Protocols"] = "Http2",
                });

                // Kestrel rebinds port 0 to a real port on the endpoint's ListenOptions; keep them to tell the two apart.
                builder.WebHost.ConfigureKestrel((context, kestrel) =>
                    (kestrel.ConfigurationLoader ?? kestrel.Configure(context.Configuration.GetSection("Kestrel")))
                        .Endpoint(H2cEndpointName, endpoint => h2cListen = endpoint.ListenOptions));
            }

            options.Configure?.Invoke(builder);
        });

        if (host is null)
        {
            dir.Delete(recursive: true);
            throw new InvalidOperationException("ReaperHost.Create refused the test configuration:" + Environment.NewLine + string.Join(Environment.NewLine, errors));
        }

        var proxy = new TestProxy(host, dir, file);
        try
        {
            await host.StartAsync();
            proxy.AdminUri = new Uri(host.AdminAddresses.Single().TrimEnd('/') + "/");
            if (options.H2cEndpoint)
            {
                var h2cPort = (h2cListen?.IPEndPoint ?? throw new InvalidOperationException("the h2c endpoint was not configured")).Port;
                proxy.H2cUri = new Uri($"http://127.0.0.1:{h2cPort}/");
                proxy.PublicUri = host.ProxyAddresses.Select(a => new Uri(a.TrimEnd('/') + "/")).Single(u => u.Port != h2cPort);
            }
            else
            {
                proxy.PublicUri = new Uri(host.ProxyAddresses.Single().TrimEnd('/') + "/");
            }
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }

        return proxy;
    }

    /// <summary>A <c>ws://</c> address on the public HTTP/1.1 endpoint (or the h2c one).</summary>
    public Uri WebSocketUri(string path, bool h2c = false)
    {
        var http = h2c ? H2cUri ?? throw new InvalidOperationException("start the proxy with H2cEndpoint = true") : PublicUri;
        return new UriBuilder(new Uri(http, path)) { Scheme = "ws" }.Uri;
    }

    /// <summary>Replaces the config file atomically (write, then rename), as a ConfigMap update would.</summary>
    public void WriteConfig(string text)
    {
        var temp = ConfigFile + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, ConfigFile, overwrite: true);
    }

    /// <inheritdoc cref="ReloadAsync(string)"/>
    public Task<ReloadOutcome> ReloadAsync(ProxyConfig config) => ReloadAsync(config.WithTestDefaults().ToJson());

    /// <summary>
    /// Rewrites the config file and has the proxy check it now, without waiting for the poll timer.
    /// Returns whether the change was applied or rejected; when applied, YARP's route table has the
    /// new file's route ids by the time this returns.
    /// </summary>
    public async Task<ReloadOutcome> ReloadAsync(string text)
    {
        var outcome = new TaskCompletionSource<ReloadOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnApplied() => outcome.TrySetResult(ReloadOutcome.Applied);
        void OnRejected() => outcome.TrySetResult(ReloadOutcome.Rejected);
        Reporter.ReloadApplied += OnApplied;
        Reporter.ReloadRejected += OnRejected;
        try
        {
            WriteConfig(text);
            foreach (var provider in Reporter.Providers)
            {
                provider.Poll();
            }

            var result = await outcome.Task.WaitAsync(Eventually.DefaultTimeout);
            if (result == ReloadOutcome.Applied)
            {
                var expected = RouteIds(text);
                var lookup = Host.Proxy.Services.GetRequiredService<IProxyStateLookup>();
                await Eventually.UntilAsync(
                    () => lookup.GetRoutes().Select(r => r.Config.RouteId).ToHashSet(StringComparer.OrdinalIgnoreCase).SetEquals(expected),
                    "YARP to load the reloaded routes");
            }

            return result;
        }
        finally
        {
            Reporter.ReloadApplied -= OnApplied;
            Reporter.ReloadRejected -= OnRejected;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            // Bounded: connections a test left open are aborted after a short grace period.
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await Host.StopAsync(grace.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException)
        {
            // Not started, or already stopped.
        }

        await Host.DisposeAsync();
        try
        {
            _dir.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private static HashSet<string> RouteIds(string json)
    {
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json));
        var configuration = new ConfigurationBuilder().AddJsonStream(stream).Build();
        return configuration.GetSection("ReverseProxy:Routes").GetChildren().Select(c => c.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
    }
}
