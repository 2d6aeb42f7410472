using System.Globalization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;
using ReaperProxy.Admin;
using ReaperProxy.Admission;
using ReaperProxy.Configuration;
using ReaperProxy.Metrics;
using Yarp.ReverseProxy.Configuration;

namespace ReaperProxy.Hosting;

/// <summary>
/// The ReaperProxy process: the public proxy (YARP) and the admin listener, built from one command
/// line and one configuration. Used by <c>Program</c> and, in-process, by the functional tests.
/// </summary>
public sealed class ReaperHost : IAsyncDisposable
{
    /// <summary>The public listener when nothing else is configured.</summary>
    public const string DefaultUrls = "http://127.0.0.1:8080";

    // Past Period + CloseTimeout, the relays end what is left themselves within a second; the rest is slack.
    private static readonly TimeSpan s_shutdownMargin = TimeSpan.FromSeconds(3);

    /// <summary>The runtime's switch behind <see cref="TransportSettings.InlineSocketCompletions"/>.</summary>
    public const string InlineSocketCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>When the last closing handshake of a drain has ended: <c>Drain:Period</c> + the longest CloseTimeout.</summary>
    public static TimeSpan ShutdownBound(ReaperSettings settings) => settings.DrainPeriod + settings.LongestCloseTimeout;

    private ReaperHost(WebApplication proxy, WebApplication admin, ReaperSettings settings)
    {
        Proxy = proxy;
        Admin = admin;
        Settings = settings;
    }

    /// <summary>The public proxy application.</summary>
    public WebApplication Proxy { get; }

    /// <summary>The admin application.</summary>
    public WebApplication Admin { get; }

    /// <summary>The settings the host started with.</summary>
    public ReaperSettings Settings { get; }

    /// <summary>The bound public addresses (after <see cref="StartAsync"/>).</summary>
    public IReadOnlyList<string> ProxyAddresses => Addresses(Proxy);

    /// <summary>The bound admin addresses (after <see cref="StartAsync"/>).</summary>
    public IReadOnlyList<string> AdminAddresses => Addresses(Admin);

    /// <summary>
    /// Builds the host. Returns null with every configuration problem, each naming where it comes
    /// from ("file: key path: what is wrong"), when the configuration is not usable.
    /// </summary>
    /// <param name="commandLine">The parsed command line.</param>
    /// <param name="errors">The problems, formatted for the user, when the result is null.</param>
    /// <param name="configure">A hook for tests (e.g. a <see cref="TimeProvider"/>).</param>
    public static ReaperHost? Create(CommandLine commandLine, out IReadOnlyList<string> errors, Action<WebApplicationBuilder>? configure = null)
    {
        var proxy = BuildProxy(commandLine, out errors, configure);
        if (proxy is null)
        {
            return null;
        }

        var settings = proxy.Services.GetRequiredService<ReaperSettingsMonitor>().Current;
        var admin = AdminApplication.Build(proxy, settings);
        return new ReaperHost(proxy, admin, settings);
    }

    /// <summary>
    /// Validates <paramref name="file"/> as <c>--check-config</c> does and describes each route's policy.
    /// </summary>
    public static bool Check(string file, TextWriter output, TextWriter error)
    {
        var proxy = BuildProxy(new CommandLine { ConfigFile = file }, out var errors, configure: null);
        if (proxy is null)
        {
            foreach (var e in errors)
            {
                error.WriteLine("error: " + e);
            }

            error.WriteLine($"{file}: {errors.Count} problem(s); the configuration is not valid.");
            return false;
        }

        var settings = proxy.Services.GetRequiredService<ReaperSettingsMonitor>().Current;
        var routes = proxy.Services.GetRequiredService<IProxyConfigProvider>().GetConfig().Routes;
        output.WriteLine($"{file}: configuration is valid.");
        output.WriteLine($"default policy (Reaper:Heartbeat): {settings.DefaultPolicy.Describe()}");
        output.WriteLine("WebSockets at once (Reaper:MaxConnections): " + (settings.MaxConnections is { } max
            ? max.ToString(CultureInfo.InvariantCulture)
            : OpenFileLimit.Read() is { } files
                ? $"auto, {OpenFileLimit.AutomaticMaxConnections} from this process's open-file limit of {files} (the deployed process may differ)"
                : "auto, no cap (the open-file limit is unknown or unlimited)"));
        output.WriteLine($"shutdown drain (Reaper:Drain:Period): " + (settings.DrainPeriod == TimeSpan.Zero
            ? "0, every WebSocket closed at once"
            : $"Close 1001 spread over {Duration.Format(settings.DrainPeriod)}") +
            $"; the last closing handshake ends within {Duration.Format(ShutdownBound(settings))} (Period + the longest CloseTimeout), " +
            $"the process exits by {Duration.Format(ShutdownBound(settings) + s_shutdownMargin)}");
        if (routes.Count == 0)
        {
            output.WriteLine("no routes are configured (ReverseProxy:Routes is empty).");
        }

        foreach (var route in routes.OrderBy(r => r.RouteId, StringComparer.Ordinal))
        {
            var policyName = route.Metadata?.GetValueOrDefault(ReaperSettings.PolicyMetadataKey);
            var policy = settings.PolicyForRoute(route.RouteId, policyName);
            output.WriteLine($"route {route.RouteId} -> cluster {route.ClusterId}, policy {policyName ?? "(default)"}: {policy.Describe()}");
        }

        return true;
    }

    /// <summary>Starts the admin listener, then the proxy; throws when a listener cannot bind.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await Admin.StartAsync(cancellationToken);
        Proxy.Services.GetRequiredService<AdminAccess>().WarnIfExposed(AdminAddresses);
        await Proxy.StartAsync(cancellationToken);
        Proxy.Services.GetRequiredService<ReadinessState>().MarkReady();
    }

    /// <summary>Runs until the proxy is asked to stop (Ctrl-C, SIGTERM), then stops the admin listener.</summary>
    public async Task WaitForShutdownAsync()
    {
        await Proxy.WaitForShutdownAsync();
        await Admin.StopAsync();
    }

    /// <summary>Stops the proxy, then the admin listener.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        await Proxy.StopAsync(cancellationToken);
        await Admin.StopAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Admin.DisposeAsync();
    }

    private static WebApplication? BuildProxy(CommandLine commandLine, out IReadOnlyList<string> errors, Action<WebApplicationBuilder>? configure)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = [],
            ApplicationName = typeof(ReaperHost).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });

        var configFile = commandLine.ConfigFile ?? builder.Configuration[$"{ReaperSettingsReader.SectionName}:ConfigFile"];
        var reporter = new ConfigReloadReporter();
        IReadOnlyList<ConfigError> fileErrors = [];
        if (!string.IsNullOrWhiteSpace(configFile))
        {
            // Over appsettings.json, under environment variables and the command line.
            var sources = builder.Configuration.Sources;
            var index = sources.Count;
            for (var i = 0; i < sources.Count; i++)
            {
                if (sources[i] is EnvironmentVariablesConfigurationSource or CommandLineConfigurationSource)
                {
                    index = i;
                    break;
                }
            }

            // The file's settings are judged below, with everything else, by the monitor: once per load.
            sources.Insert(index, new ConfigFileSource(configFile, reporter) { JudgeSettingsOnFirstLoad = false });
            fileErrors = reporter.Providers[^1].LoadErrors;
        }

        var overrides = new Dictionary<string, string?>();
        if (commandLine.Urls is not null)
        {
            overrides[WebHostDefaults.ServerUrlsKey] = commandLine.Urls;
        }

        if (commandLine.AdminUrls is not null)
        {
            overrides[$"{ReaperSettingsReader.SectionName}:AdminUrls"] = commandLine.AdminUrls;
        }

        builder.Configuration.AddInMemoryCollection(overrides);

        // The one judgement of the start-up load: the whole configuration, each problem named with its source.
        var monitor = new ReaperSettingsMonitor(builder.Configuration, reporter);
        if (monitor.LoadErrors.Count > 0 || fileErrors.Count > 0)
        {
            monitor.Dispose();
            errors = monitor.LoadErrors.Select(e => $"{SourceOf(builder.Configuration, e.Path, configFile)}: {e}")
                .Concat(fileErrors.Select(e => $"{configFile}: {e}"))
                .ToList();
            return null;
        }

        var settings = monitor.Current;
        if (builder.Configuration[WebHostDefaults.ServerUrlsKey] is null && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
        {
            builder.WebHost.UseUrls(DefaultUrls);
        }

        // Shutdown waits for the drain: every WebSocket is told to close within Drain:Period and its
        // closing handshake is bounded by CloseTimeout; past that (and a margin), whatever is left is cut.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownBound(settings) + s_shutdownMargin);

        ConfigureTransport(builder, settings.Transport);
        ConfigureLimits(builder.WebHost, settings.Limits);
        ConfigureLogging(builder, settings.LogFormat);
        builder.Services.AddSingleton(reporter);
        builder.Services.AddSingleton(_ => monitor);
        builder.Services.AddReaperProxy().LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"));

        // A proxy needs no persistent key ring (it would be written to a home directory that containers
        // often mount read-only); YARP's session-affinity cookies are protected with in-memory keys.
        // AddDataProtection (which YARP's AddReverseProxy calls too) also registers a hosted service that
        // loads the persistent key ring at start, although the ephemeral provider never reads it: it would
        // write a key under ~/.aspnet and warn that the key is not persisted, or not encrypted. Drop it
        // (after AddReaperProxy, which would add it back).
        builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
        var dataProtection = typeof(EphemeralDataProtectionProvider).Assembly;
        foreach (var preload in builder.Services.Where(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType?.Assembly == dataProtection).ToList())
        {
            builder.Services.Remove(preload);
        }

        configure?.Invoke(builder);
        DrainingServer.Decorate(builder.Services);

        var app = builder.Build();
        reporter.Attach(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ReaperProxy.Configuration"));
        var metrics = app.Services.GetRequiredService<ReaperMetrics>();
        metrics.Observe(reporter);
        var upgrades = app.Services.GetRequiredService<UpgradeLimiter>().Limiter;
        metrics.ObserveUpgradesInProgress(() => upgrades.Open);

        var proxyErrors = ValidateProxyConfig(app.Services);
        if (proxyErrors.Count > 0)
        {
            errors = proxyErrors.Select(e => $"{SourceOf(builder.Configuration, e.Path, configFile)}: {e}").ToList();
            return null;
        }

        app.MapReaperProxy();
        errors = [];
        return app;
    }

    // Reaper:Transport. The runtime reads its variable when the process's first socket operation starts,
    // which is after this (Kestrel has not bound yet); in a process that already used sockets it would
    // not apply, so it is set only here, at start.
    private static void ConfigureTransport(WebApplicationBuilder builder, TransportSettings transport)
    {
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = transport.InlineScheduling);
        if (transport.InlineSocketCompletions)
        {
            Environment.SetEnvironmentVariable(InlineSocketCompletionsVariable, "1");
        }
    }

    /// <summary>
    /// Reaper:Limits onto Kestrel, for the public listener and the admin one alike. Read at start:
    /// Kestrel takes its limits when it binds. (The upgrades-in-progress cap is the proxy's own and live.)
    /// </summary>
    private static void ConfigureLimits(IWebHostBuilder webHost, LimitsSettings limits) =>
        webHost.ConfigureKestrel(o => limits.ApplyTo(o.Limits));

    private static void ConfigureLogging(WebApplicationBuilder builder, LogFormat format)
    {
        builder.Logging.ClearProviders();
        if (format == LogFormat.Json)
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.IncludeScopes = false;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
            });
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });
        }
    }

    // YARP's own parser and validator, so routes YARP would refuse at start are reported the same way.
    private static List<ConfigError> ValidateProxyConfig(IServiceProvider services)
    {
        var problems = new List<ConfigError>();
        IProxyConfig config;
        try
        {
            config = services.GetRequiredService<IProxyConfigProvider>().GetConfig();
        }
        catch (Exception ex)
        {
            problems.Add(new("ReverseProxy", ex.InnerException is null ? ex.Message : $"{ex.Message} {ex.InnerException.Message}"));
            return problems;
        }

        var validator = services.GetRequiredService<IConfigValidator>();
        foreach (var route in config.Routes)
        {
            foreach (var ex in validator.ValidateRouteAsync(route).AsTask().GetAwaiter().GetResult())
            {
                problems.Add(new($"ReverseProxy:Routes:{route.RouteId}", ex.Message));
            }
        }

        foreach (var cluster in config.Clusters)
        {
            foreach (var ex in validator.ValidateClusterAsync(cluster).AsTask().GetAwaiter().GetResult())
            {
                problems.Add(new($"ReverseProxy:Clusters:{cluster.ClusterId}", ex.Message));
            }
        }

        return problems;
    }

    // Names where a bad key came from, so the user knows which file or variable to fix.
    private static string SourceOf(IConfigurationRoot configuration, string path, string? configFile)
    {
        foreach (var provider in configuration.Providers.Reverse())
        {
            if (!HasKeyUnder(provider, path))
            {
                continue;
            }

            return provider switch
            {
                ConfigFileProvider => configFile ?? "configuration",
                JsonConfigurationProvider json => json.Source.Path ?? "appsettings",
                EnvironmentVariablesConfigurationProvider => "environment",
                CommandLineConfigurationProvider => "command line",
                _ => "command line",
            };
        }

        return configFile ?? "configuration";
    }

    private static bool HasKeyUnder(IConfigurationProvider provider, string path)
    {
        if (provider.TryGet(path, out _))
        {
            return true;
        }

        var parent = path.Contains(':') ? path[..path.LastIndexOf(':')] : null;
        var key = parent is null ? path : path[(path.LastIndexOf(':') + 1)..];
        return provider.GetChildKeys([], parent).Contains(key, StringComparer.OrdinalIgnoreCase);
    }

    private static IReadOnlyList<string> Addresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
}
