using OpenTelemetry.Metrics;
using ReaperProxy.Configuration;

namespace ReaperProxy.Admin;

/// <summary>
/// The admin listener: its own Kestrel server, separate from the public one, so that nothing of the
/// admin surface can be reached on the public port (there those paths are proxied like any other).
/// It shares the proxy's services (metrics, readiness, connection registry) and outlives the proxy
/// during shutdown so <c>/readyz</c> can report 503 while connections drain.
/// </summary>
internal static class AdminApplication
{
    public static WebApplication Build(WebApplication proxy, ReaperSettings settings)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ApplicationName = typeof(AdminApplication).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });

        builder.WebHost.UseUrls(settings.AdminUrls);
        builder.WebHost.ConfigureKestrel(o => settings.Limits.ApplyTo(o.Limits));
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(proxy.Services.GetRequiredService<ILoggerFactory>());

        // The proxy host owns Ctrl-C/SIGTERM; the admin host is stopped explicitly after it.
        builder.Services.AddSingleton<IHostLifetime, ExplicitLifetime>();

        var admin = builder.Build();
        var readiness = proxy.Services.GetRequiredService<ReadinessState>();
        var access = proxy.Services.GetRequiredService<AdminAccess>();
        admin.Use(access.InvokeAsync);

        admin.MapGet("/healthz", () => TypedResults.Text("ok\n"));
        admin.MapGet("/readyz", () => readiness.IsReady
            ? TypedResults.Text("ready\n")
            : TypedResults.Text(readiness.Status + "\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        admin.MapPrometheusScrapingEndpoint("/metrics", proxy.Services.GetRequiredService<MeterProvider>(), null, null);

        foreach (var map in proxy.Services.GetServices<IAdminEndpoints>())
        {
            map.Map(admin);
        }

        return admin;
    }

    private sealed class ExplicitLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Lets a capability (e.g. the connection list) add endpoints to the admin listener.</summary>
internal interface IAdminEndpoints
{
    void Map(IEndpointRouteBuilder admin);
}
