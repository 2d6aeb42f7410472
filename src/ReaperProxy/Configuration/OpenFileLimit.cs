using System.Globalization;

namespace ReaperProxy.Configuration;

/// <summary>
/// The default of <c>Reaper:MaxConnections</c> when it is not set (or <c>"auto"</c>): derived from this
/// process's open-file limit. It lives beside the setting it defaults so that the settings snapshot can
/// answer <see cref="ReaperSettings.EffectiveMaxConnections"/> without naming the admission layer that
/// enforces the cap.
/// </summary>
internal static class OpenFileLimit
{
    /// <summary>The cap when <c>Reaper:MaxConnections</c> is not set: derived from this process's open-file limit.</summary>
    public static int AutomaticMaxConnections { get; } = MaxConnectionsFor(Read());

    /// <summary>
    /// Two descriptors per WebSocket, after a reserve for everything else the process holds (its
    /// assemblies alone keep about 250 open, plus HTTP traffic, logs, admin scrapes): 5% of the limit,
    /// at least 512. 20,000 descriptors give 9,500 WebSockets. No known limit: no cap.
    /// </summary>
    public static int MaxConnectionsFor(long? limit)
    {
        if (limit is not { } files || files >= int.MaxValue)
        {
            return int.MaxValue;
        }

        var reserve = Math.Max(512, files / 20);
        return (int)Math.Max(1, (files - reserve) / 2);
    }

    /// <summary>The soft "Max open files" of this process (Linux, /proc/self/limits); null when unknown or unlimited.</summary>
    public static long? Read()
    {
        try
        {
            return File.Exists("/proc/self/limits") ? Parse(File.ReadAllText("/proc/self/limits")) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Reads the soft limit from the text of /proc/PID/limits.</summary>
    public static long? Parse(string limits)
    {
        const string Name = "Max open files";
        foreach (var line in limits.Split('\n'))
        {
            if (line.StartsWith(Name, StringComparison.Ordinal))
            {
                var fields = line[Name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) && soft > 0
                    ? soft
                    : null;
            }
        }

        return null;
    }
}
