using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using ReaperProxy.Relay;

namespace ReaperProxy.Hosting;

/// <summary>
/// Kestrel, stopped only after the WebSockets have drained. The web server is the last hosted service
/// to start and the first to stop, and Kestrel stops by closing its listeners at once; stopping it
/// after the drain keeps the public port accepting meanwhile, so a new WebSocket gets a clean 503 with
/// Retry-After (and plain HTTP is still served) instead of a refused connection.
/// </summary>
internal sealed class DrainingServer(IServer inner, ConnectionDrain drain) : IServer
{
    public IFeatureCollection Features => inner.Features;

    public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
        where TContext : notnull => inner.StartAsync(application, cancellationToken);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await drain.WaitAsync(cancellationToken);
        await inner.StopAsync(cancellationToken);
    }

    public void Dispose() => inner.Dispose();

    /// <summary>Wraps the registered server (Kestrel) of <paramref name="services"/>.</summary>
    public static void Decorate(IServiceCollection services)
    {
        var descriptor = services.LastOrDefault(d => d.ServiceType == typeof(IServer));
        if (descriptor?.ImplementationType is not { } implementation)
        {
            return;
        }

        services.Remove(descriptor);
        services.AddSingleton<IServer>(sp => new DrainingServer(
            (IServer)ActivatorUtilities.CreateInstance(sp, implementation), sp.GetRequiredService<ConnectionDrain>()));
    }
}
