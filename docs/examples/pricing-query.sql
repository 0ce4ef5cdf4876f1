SELECT u.style,
       SUM(u.count)          AS calls,
       SUM(u.count * p.cost) AS tokens
FROM usage AS u
JOIN imagine_prices AS p
  ON p.style = u.style
 AND (p.valid_from IS NULL OR u.timestamp >= p.valid_from)
 AND (p.valid_to IS NULL OR u.timestamp < p.valid_to)
GROUP BY u.style
ORDER BY u.style;
